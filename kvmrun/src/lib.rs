//! `kvmrun`: boots a Linux kernel with a container's initrd under qemu and
//! runs one program in it, the way `docker run` runs one in a container
//! (docs/DESIGN.md, "Running in a VM"). It replaces the seed's
//! `default.runkvm.do`, `memcalc.py` and `rdinit`.
//!
//! The pieces, one module each:
//! - [`kernel`]: which kernel to boot;
//! - [`accel`]: KVM or software emulation (TCG);
//! - [`initrd`]: the image's initrd plus our guest init, appended as a
//!   second cpio archive;
//! - [`memory`]: how much RAM the guest needs for that initrd;
//! - [`vm`]: the qemu command line, and the loop that relays the serial
//!   ports, enforces the timeouts and stops qemu on a signal;
//! - [`report`]: the guest init's report protocol.

use std::path::PathBuf;

use anyhow::Context;

pub mod accel;
pub mod initrd;
pub mod kernel;
pub mod memory;
pub mod report;
pub mod vm;
pub mod vmlinux;

/// The name in messages.
pub const TOOL: &str = "kvmrun";

/// Boot INITRD in a qemu VM and run its /init (or CMD) with the program's
/// stdout on ours, the VM console on stderr, and its exit code as ours.
#[derive(clap::Parser, Debug)]
#[command(name = "kvmrun", version)]
pub struct Cli {
    /// Kernel to boot [default: $KVMRUN_KERNEL, /boot/vmlinuz-$(uname -r),
    /// the newest /boot/vmlinuz-*]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Guest RAM: bytes, or with a K/M/G/T suffix (512M, 1G) [default:
    /// enough for the kernel and the unpacked initrd]
    #[arg(long, value_name = "SIZE", value_parser = memory::parse_size)]
    pub mem: Option<u64>,

    /// Virtual CPUs
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=255))]
    pub cpus: u32,

    /// Accelerator: auto uses KVM only where it can boot an ordinary kernel
    #[arg(long, value_enum, default_value_t = accel::Choice::Auto)]
    pub accel: accel::Choice,

    /// More kernel command-line arguments (after ours, so they can override)
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,

    /// The qemu binary (default: `qemu-system-<host arch>`)
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,

    /// Show the whole kernel console (default: the kernel boots `quiet`)
    #[arg(short, long)]
    pub verbose: bool,

    /// The initrd: a newc cpio archive, optionally compressed ('-': stdin)
    #[arg(value_name = "INITRD")]
    pub initrd: PathBuf,

    /// `--timeout` and CMD (looked up in the image's PATH), as chrootrun
    /// takes them.
    #[command(flatten)]
    pub runner: filtertool::args::RunnerArgs,
}

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::runner(TOOL);

/// Runs the whole thing; returns the program's exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    // The --timeout clock starts now, before any I/O: a kernel or initrd
    // that is slow to read counts against it.
    let start = std::time::Instant::now();
    let timeout = cli.runner.limit();
    // Signals next: from here on SIGINT/SIGTERM/SIGHUP are read from a
    // signalfd, by the copy of the initrd and then by the VM loop, which
    // stop, remove the temporary files and exit 128+N.
    let signals = vm::Signals::block().context("blocking signals")?;
    let watch = vm::Watch {
        signals: &signals,
        deadline: timeout.map(|t| start + t),
        timeout,
    };

    let env_kernel = std::env::var_os("KVMRUN_KERNEL");
    let kernel = kernel::resolve(
        cli.kernel.as_deref(),
        env_kernel.as_deref(),
        kernel::running_release().as_deref(),
        std::path::Path::new(kernel::BOOT_DIR),
    )?;
    let kernel_file = kernel::open(&kernel)?;
    // A bzImage boots as its cached vmlinux through PVH where it can.
    let (kernel, kernel_file) = vmlinux::prefer_vmlinux(kernel, kernel_file);
    watch.check()?;

    let decision = accel::decide(cli.accel, &accel::Probe::host());
    if let Some(note) = &decision.note {
        eprintln!("{TOOL}: note: {note}");
    }

    let dir = tempfile::Builder::new()
        .prefix("kvmrun-")
        .tempdir()
        .context("creating a temporary directory")?;
    let initrd = dir.path().join("initrd");
    let guest = initrd::Guest {
        argv: &cli.runner.command,
        verbose: cli.verbose,
    };
    let (limit, limit_why) = match cli.mem {
        Some(m) => (m, "the VM's memory (--mem)"),
        None => (memory::host_ram(), "this host's memory"),
    };
    let src = initrd::Source {
        path: &cli.initrd,
        limit,
        limit_why,
    };
    // On any error, `dir` is removed as it drops.
    initrd::build(&src, &initrd, &guest, &watch)?;

    let mem = match cli.mem {
        Some(m) => m,
        None => {
            let usage = memory::measure(&initrd, limit).with_context(|| {
                format!(
                    "measuring initrd {}",
                    filtertool::quote::quote_path(&cli.initrd)
                )
            })?;
            memory::default_size(&usage)
        }
    };
    watch.check()?;

    let qemu = cli.qemu.clone().unwrap_or_else(vm::default_qemu);
    let spec = vm::Spec {
        bios: vm::qboot(&qemu),
        qemu,
        kernel,
        kernel_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&kernel_file)),
        initrd,
        mem,
        cpus: cli.cpus,
        accel: decision.accel,
        append: cli.append.clone(),
        verbose: cli.verbose,
        timeout,
        deadline: watch.deadline,
    };
    let result = vm::run(&spec, &signals);
    drop(kernel_file);
    // Remove the temporary files before the exit status leaves, whatever
    // it is (the error path included).
    let cleanup = dir.close();
    let code = result?;
    cleanup.context("removing the temporary directory")?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn command_comes_after_the_initrd_with_or_without_double_dash() {
        let cli = Cli::try_parse_from([
            "kvmrun", "--mem", "256M", "-v", "img", "--", "/bin/sh", "-c", "exit 7",
        ])
        .unwrap();
        assert_eq!(cli.mem, Some(256 << 20));
        assert!(cli.verbose);
        assert_eq!(cli.initrd, PathBuf::from("img"));
        assert_eq!(cli.runner.command, ["/bin/sh", "-c", "exit 7"]);
        let cli = Cli::try_parse_from(["kvmrun", "img", "/bin/sh", "-c", "exit 7"]).unwrap();
        assert_eq!(cli.runner.command, ["/bin/sh", "-c", "exit 7"]);
        assert!(!cli.verbose);
        // Options between INITRD and CMD are still kvmrun's.
        let cli = Cli::try_parse_from(["kvmrun", "img", "-v", "/init", "-v"]).unwrap();
        assert!(cli.verbose);
        assert_eq!(cli.runner.command, ["/init", "-v"]);
        let cli = Cli::try_parse_from(["kvmrun", "-"]).unwrap();
        assert!(cli.runner.command.is_empty());
        assert_eq!(cli.accel, accel::Choice::Auto);
    }
}
