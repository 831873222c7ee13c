//! Runs qemu and relays its three serial ports, as the seed's
//! `default.runkvm.do` does: ttyS0 the console → our stderr, ttyS1 the
//! program's stdout → our stdout, ttyS2 the init's report → [`crate::report`].
//!
//! Each port is a qemu `file` chardev writing into a pipe that we read
//! (`path=/proc/self/fd/N` on the inherited write end), so stdout streams as
//! the guest writes it, byte for byte, and kvmrun sees each channel on its
//! own. One thread polls the three pipes, a signalfd for SIGINT/SIGTERM/SIGHUP,
//! and the deadlines:
//! - `--timeout`: qemu is killed, exit 124;
//! - the boot watchdog: no `ready` from the init within [`BOOT_WATCHDOG`]
//!   (a kernel that hangs, as under a paravirtual KVM), exit 125;
//! - a signal: qemu is killed, exit 128+N.
//!
//! No qemu outlives kvmrun: it is killed on every path out of [`run`], and
//! `PR_SET_PDEATHSIG` kills it if kvmrun itself is killed with SIGKILL.
//! After qemu ends, the pipes are drained to EOF, so no output is lost.
//!
//! The VM ends as soon as the init's report line (`exit N`, `signal N`,
//! `error ...`) has arrived: kvmrun kills qemu then, instead of waiting for
//! the guest to power off and qemu to exit. Nothing is lost by it: the init
//! drains ttyS1 and ttyS0 (tcdrain(3): the UART is empty only once qemu
//! has written the bytes to our pipe) before it writes the report, and the
//! pipes are still read to EOF after the kill. This is what lets the
//! cookbook kernel do without ACPI, whose S5 state is the only way a PC
//! guest powers qemu off; it also saves the kernel's device shutdown and
//! qemu's exit: hello on the cookbook kernel under TCG, 6 interleaved pairs
//! on a loaded 2-core machine, median 1.18 s waiting against 1.11 s
//! killing (strace of kvmrun: the report arrives 47 ms after `ready`, and
//! kvmrun is done 7 ms after it).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::accel::Accel;
use crate::report::{Channel, Outcome};
use crate::{initrd, memory};

/// How long the kernel gets to start our init. Under TCG a boot takes
/// 6-7 s (Debian's 6.1 kernel, qemu 7.2, measured on a 2-core x86-64
/// VM); unpacking a 200 MB tree adds seconds. Without this
/// a kernel that hangs (paravirtual KVM) would keep kvmrun forever when no
/// `--timeout` is given.
pub const BOOT_WATCHDOG: Duration = Duration::from_secs(120);

/// Console bytes kept for the error message when the VM dies.
const CONSOLE_RING: usize = 4096;

/// Everything qemu is started with.
#[derive(Clone, Debug)]
pub struct Spec {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    /// The kernel, opened and checked: qemu reads it through
    /// `/proc/self/fd/N` (the descriptor is inherited), not by path.
    pub kernel_fd: Option<RawFd>,
    /// The firmware (`-bios`), where not qemu's default: see [`qboot`].
    pub bios: Option<PathBuf>,
    pub initrd: PathBuf,
    pub mem: u64,
    pub cpus: u32,
    pub accel: Accel,
    pub append: Option<String>,
    pub verbose: bool,
    pub timeout: Option<Duration>,
    /// When `--timeout` expires: counted from kvmrun's start.
    pub deadline: Option<Instant>,
}

/// `qemu-system-<host arch>`.
pub fn default_qemu() -> PathBuf {
    PathBuf::from(format!("qemu-system-{}", std::env::consts::ARCH))
}

/// qboot, the minimal firmware qemu ships (`qboot.rom` in its data
/// directory, `PREFIX/share/qemu` beside `PREFIX/bin/qemu-system-*`), where
/// it is there: it loads a kernel from fw_cfg, as `-kernel` passes it (a
/// bzImage, or a vmlinux through PVH), without SeaBIOS's device probing.
/// Measured here under TCG, Debian 6.1 vmlinux, hello, 5 interleaved pairs:
/// qemu's CPU time median 3.14 s against 3.88 s with SeaBIOS (4 pairs of 5
/// faster), wall 5.05 s against 5.33 s on a loaded machine.
pub fn qboot(qemu: &Path) -> Option<PathBuf> {
    let bin = if qemu.components().count() > 1 {
        qemu.to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(qemu))
            .find(|p| p.is_file())?
    };
    let bin = std::fs::canonicalize(bin).ok()?;
    let rom = bin.parent()?.parent()?.join("share/qemu/qboot.rom");
    rom.is_file().then_some(rom)
}

/// Kernel parameters (Documentation/admin-guide/kernel-parameters.txt)
/// that skip boot work a one-program VM does not need. Measured here
/// under TCG on the Debian 6.1 vmlinux, hello, 5 interleaved pairs each, on
/// a machine at load 6 on 2 cores, none stood out of the run-to-run noise
/// (qemu CPU-time medians, without/with: mitigations=off 2.96/2.82 s,
/// the i8042 set 2.79/2.53 s); what each skips, by the kernel's own log:
/// - `no_timer_check`: the IO-APIC timer check (arch/x86/kernel/apic/
///   io_apic.c, `timer_irq_works`), which busy-waits ten jiffies (40 ms at
///   Debian's HZ=250) for ticks;
/// - `i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd`: the PS/2
///   controller probe of a built-in i8042 driver (Debian's), 17 ms of the
///   log, for a keyboard no one types on;
/// - `mitigations=off`: no Spectre/Meltdown mitigations inside the guest,
///   fewer retpoline call sites to patch at boot (the 0.5 s between "x86/fpu"
///   and "Freeing SMP alternatives" in the log) and plain indirect calls
///   after. The guest runs one program; it is the VM boundary, whose
///   mitigations are the host's, that keeps it from the host.
///
/// Not used: `lpj=` (both the Debian and the cookbook kernels already
/// skip the delay-loop calibration, "value calculated using timer
/// frequency"), `tsc=reliable` (it only stops the clocksource watchdog,
/// off the boot's critical path), `acpi=off` (kvmrun no longer needs the
/// guest's ACPI power-off, see the module comment, but a distribution
/// kernel may need ACPI for its interrupt routing or its clocks; the
/// cookbook kernel is built without ACPI instead).
pub const BOOT_ARGS: &str =
    "no_timer_check i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd mitigations=off";

/// Kernel parameters for a TCG guest only.
///
/// `noapictimer`: no local APIC timer, so a uniprocessor kernel skips its
/// calibration (arch/x86/kernel/apic/apic.c, `setup_boot_APIC_clock`:
/// `calibrate_APIC_clock` counts the APIC timer against the PIT for
/// LAPIC_CAL_LOOPS, HZ/10 ticks, which under emulation took 218 ms of the
/// cookbook kernel's boot, between `lockup_detector_init` and `smp_init`
/// returning, printk timestamps); the PIT gives the tick instead. Hello on
/// the cookbook kernel, 6 interleaved pairs on a loaded 2-core machine:
/// median 1.05 s without, 0.90 s with. Not under KVM, where the
/// calibration runs at native speed and the APIC timer (TSC deadline) is
/// the cheap clock event.
pub const TCG_BOOT_ARGS: &str = "noapictimer";

/// The kernel command line: ours, then the user's (later wins).
pub fn kernel_cmdline(spec: &Spec) -> String {
    // console=ttyS0: the first port is the console. panic=-1: reboot at
    // once on a panic, which -no-reboot turns into qemu exiting.
    let mut s = format!(
        "console=ttyS0 rdinit={} panic=-1 {BOOT_ARGS}",
        initrd::INIT_PATH
    );
    if spec.accel == Accel::Tcg {
        s.push(' ');
        s.push_str(TCG_BOOT_ARGS);
    }
    if !spec.verbose {
        s.push_str(" quiet");
    }
    if let Some(a) = spec.append.as_deref().filter(|a| !a.trim().is_empty()) {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// qemu's arguments; `ports` are the write ends for ttyS0, ttyS1, ttyS2 as
/// they will be numbered in qemu.
///
/// The machine is qemu's default PC, not `-M microvm`: microvm has one
/// serial port, and console, stdout and the init's report need three
/// channels kept apart; its other transport, virtio-console over
/// virtio-mmio, is a module in distribution kernels (Debian 6.1:
/// `CONFIG_VIRTIO_CONSOLE=m`, `CONFIG_VIRTIO_MMIO=m`), which an initrd of
/// a container image does not carry.
pub fn qemu_args(spec: &Spec, ports: [RawFd; 3]) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: String| a.push(OsString::from(s));
    for s in [
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
    ] {
        push(s.to_string());
    }
    push("-accel".into());
    push(spec.accel.qemu_name().into());
    push("-m".into());
    push(memory::qemu_arg(spec.mem));
    push("-smp".into());
    push(spec.cpus.to_string());
    for (i, fd) in ports.iter().enumerate() {
        push("-chardev".into());
        push(format!("file,id=kvmrun{i},path=/proc/self/fd/{fd}"));
        push("-serial".into());
        push(format!("chardev:kvmrun{i}"));
    }
    if let Some(b) = &spec.bios {
        a.push("-bios".into());
        a.push(b.clone().into_os_string());
    }
    a.push("-kernel".into());
    match spec.kernel_fd {
        Some(fd) => a.push(format!("/proc/self/fd/{fd}").into()),
        None => a.push(spec.kernel.clone().into_os_string()),
    }
    a.push("-initrd".into());
    a.push(spec.initrd.clone().into_os_string());
    a.push("-append".into());
    a.push(kernel_cmdline(spec).into());
    a
}

/// SIGINT, SIGTERM and SIGHUP, blocked and readable from a signalfd, so
/// the loop handles them between reads instead of in a handler.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the signals in this (single-threaded) process. qemu starts
    /// with an empty mask: std resets it in the child.
    pub fn block() -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Signals { fd })
    }

    /// A pending signal, if any (the signalfd is non-blocking).
    fn take(&self) -> Option<i32> {
        let info = self.fd.read_signal().ok().flatten()?;
        Some(info.ssi_signo as i32)
    }
}

/// What may end kvmrun before the VM runs: a signal, or the `--timeout`
/// clock, which starts when kvmrun does, not when qemu does, so that a
/// slow or silent input (a pipe that never writes) is bounded too.
pub struct Watch<'a> {
    pub signals: &'a Signals,
    /// When `--timeout` expires, if given.
    pub deadline: Option<Instant>,
    /// `--timeout` itself, for the message.
    pub timeout: Option<Duration>,
}

impl Watch<'_> {
    /// The error a signal or the deadline makes, if one is due now.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(sig) = self.signals.take() {
            return Err(signalled(sig, " before the VM started"));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timed_out(
                self.timeout.unwrap_or_default(),
                " before the VM started",
            ));
        }
        Ok(())
    }

    /// Waits until `fd` is readable (or at its end), a signal arrives or
    /// the deadline passes; the latter two are errors.
    pub fn wait_readable(&self, fd: BorrowedFd<'_>) -> anyhow::Result<()> {
        loop {
            self.check()?;
            let wait_ms = match self.deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
                }
                None => -1,
            };
            let mut pfds = [
                PollFd::new(fd, PollFlags::POLLIN),
                PollFd::new(self.signals.fd.as_fd(), PollFlags::POLLIN),
            ];
            let timeout = PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::NONE);
            match poll(&mut pfds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(io::Error::from(e)).context("polling the input"))
                }
            }
            // Bits nix does not know (None) still mean "look".
            let woke = |p: &PollFd<'_>| p.revents().is_none_or(|r| !r.is_empty());
            if woke(&pfds[1]) {
                continue; // check() takes the signal
            }
            if woke(&pfds[0]) {
                return Ok(());
            }
        }
    }
}

/// The error for signal `sig`: exit 128+N, as a shell reports it.
fn signalled(sig: i32, when: &str) -> anyhow::Error {
    filtertool::fail(
        128u8.saturating_add(sig as u8),
        format!("stopped by signal {sig}{when}"),
    )
}

/// The error for `--timeout`: exit 124, as timeout(1).
fn timed_out(t: Duration, when: &str) -> anyhow::Error {
    filtertool::fail(
        filtertool::exit::TIMEOUT,
        format!("timed out after {} s{when}", t.as_secs_f64()),
    )
}

fn pipe() -> io::Result<(File, OwnedFd)> {
    // std's pipe is pipe2(O_CLOEXEC), as qemu must inherit only the ports.
    let (r, w) = io::pipe()?;
    Ok((File::from(OwnedFd::from(r)), OwnedFd::from(w)))
}

/// Why the loop stopped qemu itself.
enum Stop {
    Timeout(Duration),
    Watchdog,
    Signal(i32),
    Stdout(io::Error),
}

/// The console relay: to stderr as it comes, `\r\n` from the kernel's
/// serial console written as `\n`, the last bytes kept for errors, and
/// the line that says why the guest died picked out as it passes.
#[derive(Default)]
struct Console {
    ring: VecDeque<u8>,
    pending_cr: bool,
    /// The line being received, up to [`MAX_WHY`] bytes.
    line: Vec<u8>,
    /// The most telling reason seen so far: (rank, line).
    why: Option<(usize, Vec<u8>)>,
}

/// The longest reason line kept.
const MAX_WHY: usize = 512;

/// Console lines that say why a guest died, most telling first: the
/// initramfs did not unpack (init/initramfs.c: "Initramfs unpacking
/// failed: invalid magic at start of compressed archive", "junk within
/// compressed archive", "write error" when the tmpfs is full), the kernel
/// ran out of memory (mm/oom_kill.c, mm/page_alloc.c), then the panic
/// reason itself (kernel/panic.c: "Kernel panic - not syncing: …"), which
/// after a failed unpack only says no init was found. Only the first line
/// of the best rank is kept: later ones are consequences.
const REASONS: &[&[&str]] = &[
    &["Initramfs unpacking failed", "initramfs unpacking failed"],
    &[
        "Out of memory",
        "System is deadlocked on memory",
        "invoked oom-killer",
        "Unable to mount root fs",
    ],
    &["Kernel panic - not syncing", "No working init found"],
];

fn rank(line: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(line);
    REASONS
        .iter()
        .position(|pats| pats.iter().any(|p| text.contains(p)))
}

impl Console {
    fn relay(&mut self, data: &[u8], show: bool) {
        let mut out = Vec::with_capacity(data.len() + 1);
        for &b in data {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
        if show {
            let _ = io::stderr().write_all(&out);
        }
        for &b in &out {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                if let Some(r) = rank(&line) {
                    if self.why.as_ref().is_none_or(|(best, _)| r < *best) {
                        self.why = Some((r, line));
                    }
                }
            } else if self.line.len() < MAX_WHY {
                self.line.push(b);
            }
            if self.ring.len() == CONSOLE_RING {
                self.ring.pop_front();
            }
            self.ring.push_back(b);
        }
    }

    /// The reason line, quoted, and "; " if there is one: it goes first.
    fn why(&self) -> String {
        match &self.why {
            Some((_, line)) => format!(
                "the guest kernel said {}; ",
                filtertool::quote::quote(trim(line))
            ),
            None => String::new(),
        }
    }

    /// The last few non-empty lines, each quoted (they are the guest's
    /// bytes: escapes and control characters stay escaped), joined to fit
    /// on one line.
    fn tail(&self, lines: usize) -> String {
        let bytes: Vec<u8> = self.ring.iter().copied().collect();
        let mut last: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .map(trim)
            .filter(|l| !l.is_empty())
            .collect();
        let keep = last.len().saturating_sub(lines);
        last.drain(..keep);
        last.iter()
            .map(|l| filtertool::quote::quote(l))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// `line` without surrounding ASCII white space.
fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace());
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &line[s..=e],
        _ => &[],
    }
}

/// Boots the VM and returns the program's exit code.
pub fn run(spec: &Spec, signals: &Signals) -> anyhow::Result<u8> {
    let (mut con_r, con_w) = pipe().context("creating a pipe")?;
    let (mut out_r, out_w) = pipe().context("creating a pipe")?;
    let (mut rep_r, rep_w) = pipe().context("creating a pipe")?;
    let ports = [con_w.as_raw_fd(), out_w.as_raw_fd(), rep_w.as_raw_fd()];

    let mut cmd = Command::new(&spec.qemu);
    cmd.args(qemu_args(spec, ports)).stdin(Stdio::null());
    // qemu's own chatter goes to stderr: stdout is the program's alone.
    // (A close-on-exec duplicate: std dups it onto the child's fd 1.)
    if let Ok(dup) = io::stderr().as_fd().try_clone_to_owned() {
        cmd.stdout(Stdio::from(dup));
    }
    let parent = std::process::id() as libc::pid_t;
    // The descriptors qemu inherits: the three ports and the kernel.
    let mut inherit = ports.to_vec();
    inherit.extend(spec.kernel_fd);
    // SAFETY: pre_exec runs in the forked child, where only
    // async-signal-safe functions may be called (signal-safety(7)): the
    // closure calls only prctl, getppid, fcntl and _exit, allocates
    // nothing and takes no lock; `inherit` was built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // kvmrun died before the prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(125);
            }
            for &fd in &inherit {
                let fl = libc::fcntl(fd, libc::F_GETFD);
                if fl < 0 || libc::fcntl(fd, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let qemu_name = filtertool::quote::quote_path(&spec.qemu);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(filtertool::fail(
                filtertool::exit::RUNNER_FAILED,
                format!("{qemu_name}: not found (install qemu: apt-get install qemu-system-x86, or pass --qemu PATH)"),
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("starting {qemu_name}")));
        }
    };
    // Only qemu holds the write ends now, so EOF means qemu is gone.
    drop((con_w, out_w, rep_w));

    let mut guard = Guard { child: &mut child };
    let result = relay(
        spec,
        signals,
        &mut guard,
        [&mut con_r, &mut out_r, &mut rep_r],
    );
    let status = guard.child.wait();
    let (channel, console, stop) = result?;
    let status = status.with_context(|| format!("waiting for {qemu_name}"))?;

    let rf = filtertool::exit::RUNNER_FAILED;
    match stop {
        Some(Stop::Stdout(e)) => return Err(anyhow::Error::new(e).context("writing stdout")),
        Some(Stop::Timeout(t)) => return Err(timed_out(t, "; the VM was stopped")),
        Some(Stop::Signal(s)) => return Err(signalled(s, "; the VM was stopped")),
        Some(Stop::Watchdog) => {
            let hint = if spec.accel == Accel::Kvm {
                " (a paravirtual KVM hangs ordinary kernels: try --accel tcg)"
            } else {
                ""
            };
            return Err(filtertool::fail(
                rf,
                format!(
                    "{}the kernel did not start the guest init within {} s{hint}; last console lines: {}",
                    console.why(),
                    BOOT_WATCHDOG.as_secs(),
                    console.tail(3)
                ),
            ));
        }
        None => {}
    }
    match channel.outcome {
        Some(Outcome::Failed { code, message }) => Err(filtertool::fail(code, message)),
        Some(o) => Ok(o.exit_code()),
        None if !status.success() && channel.ready => Err(filtertool::fail(
            rf,
            format!(
                "{}{qemu_name} ended ({status}) before the guest init reported; last console lines: {}",
                console.why(),
                console.tail(3)
            ),
        )),
        None if !channel.ready && console.ring.is_empty() => Err(filtertool::fail(
            rf,
            format!("{qemu_name} ended ({status}) before the guest kernel printed anything"),
        )),
        None => Err(filtertool::fail(
            rf,
            format!(
                "{}the VM stopped before the guest init reported an exit status (kernel panic?); last console lines: {}",
                console.why(),
                console.tail(3)
            ),
        )),
    }
}

/// Kills qemu when dropped, whatever path leaves [`run`].
struct Guard<'a> {
    child: &'a mut Child,
}

impl Guard<'_> {
    fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

type Relayed = (Channel, Console, Option<Stop>);

fn relay(
    spec: &Spec,
    signals: &Signals,
    guard: &mut Guard,
    fds: [&mut File; 3],
) -> anyhow::Result<Relayed> {
    let start = Instant::now();
    let deadline = spec.deadline;
    let watchdog = start + BOOT_WATCHDOG;
    let mut channel = Channel::default();
    let mut console = Console::default();
    let mut stop: Option<Stop> = None;
    // qemu was killed because the init's report had arrived.
    let mut reported = false;
    let mut open = [true; 3];
    let mut buf = vec![0u8; 64 * 1024];
    let stdout = io::stdout();
    let mut stdout = stdout.lock();

    while open.iter().any(|&o| o) {
        // The nearest deadline, while none has fired and the report is
        // not in (once it is, the run has its result: only the drain of
        // the pipes is left).
        let mut wait_ms: i32 = -1;
        if stop.is_none() && !reported {
            let now = Instant::now();
            let mut next = deadline;
            if !channel.ready {
                next = Some(next.map_or(watchdog, |d| d.min(watchdog)));
            }
            if let Some(n) = next {
                if now >= n {
                    let fired = if deadline.is_some_and(|d| now >= d) {
                        Stop::Timeout(spec.timeout.unwrap_or_default())
                    } else {
                        Stop::Watchdog
                    };
                    stop = Some(fired);
                    guard.kill();
                    continue;
                }
                let ms = (n - now).as_millis().saturating_add(1);
                wait_ms = i32::try_from(ms).unwrap_or(i32::MAX);
            }
        }
        // Report first, then stdout, then console: the init writes its
        // report (and drains stdout) before the kernel prints its last
        // lines, so this order sees them in the order they were written.
        let order = [2usize, 1, 0];
        // Which ports have data, EOF or an error, and whether a signal
        // came. A port at EOF is left out: its hangup would wake every poll.
        let mut ready = [false; 3];
        let signalled;
        {
            let mut pfds = Vec::with_capacity(4);
            let mut ports = Vec::with_capacity(3);
            for &i in &order {
                if open[i] {
                    pfds.push(PollFd::new(fds[i].as_fd(), PollFlags::POLLIN));
                    ports.push(i);
                }
            }
            pfds.push(PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN));
            let timeout = PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::NONE);
            match poll(&mut pfds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(io::Error::from(e))
                        .context("polling qemu's serial ports"))
                }
            }
            // Bits nix does not know (None) still mean "look".
            let woke = |p: &PollFd<'_>| p.revents().is_none_or(|r| !r.is_empty());
            for (p, &i) in pfds.iter().zip(&ports) {
                ready[i] = woke(p);
            }
            signalled = pfds.last().is_some_and(woke);
        }
        for &i in &order {
            if !ready[i] {
                continue;
            }
            let got = match fds[i].read(&mut buf) {
                Ok(0) => {
                    open[i] = false;
                    continue;
                }
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow::Error::new(e).context("reading qemu's serial port")),
            };
            let data = &buf[..got];
            match i {
                2 => {
                    channel.feed(data);
                    // The report is complete: end the VM now rather than
                    // wait for the guest's power-off and qemu's exit (see
                    // the module comment).
                    if channel.outcome.is_some() && stop.is_none() && !reported {
                        reported = true;
                        guard.kill();
                    }
                }
                1 => {
                    if !matches!(stop, Some(Stop::Stdout(_))) {
                        if let Err(e) = stdout.write_all(data).and_then(|()| stdout.flush()) {
                            stop = Some(Stop::Stdout(e));
                            guard.kill();
                        }
                    }
                }
                _ => {
                    // Once the program has ended, the rest is the kernel
                    // powering off: shown only with -v.
                    let show = spec.verbose || channel.outcome.is_none();
                    console.relay(data, show);
                }
            }
        }
        if signalled {
            if let Some(sig) = signals.take() {
                if stop.is_none() && !reported {
                    stop = Some(Stop::Signal(sig));
                    guard.kill();
                }
            }
        }
    }
    Ok((channel, console, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            qemu: default_qemu(),
            kernel: "/boot/vmlinuz".into(),
            kernel_fd: None,
            bios: None,
            initrd: "/tmp/x/initrd".into(),
            mem: 128 << 20,
            cpus: 2,
            accel: Accel::Tcg,
            append: Some("loglevel=7".into()),
            verbose: false,
            timeout: None,
            deadline: None,
        }
    }

    #[test]
    fn qboot_is_found_beside_the_qemu_binary() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let qemu = bin.join("qemu-system-x86_64");
        std::fs::write(&qemu, b"").unwrap();
        assert_eq!(qboot(&qemu), None, "no qboot.rom: qemu's default firmware");
        let share = d.path().join("share/qemu");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::write(share.join("qboot.rom"), b"rom").unwrap();
        let rom = qboot(&qemu).unwrap();
        assert!(rom.ends_with("share/qemu/qboot.rom"), "{}", rom.display());
        let s = Spec {
            bios: Some(rom.clone()),
            ..spec()
        };
        let a = qemu_args(&s, [3, 4, 5]);
        let i = a.iter().position(|x| x == "-bios").unwrap();
        assert_eq!(a[i + 1], rom.as_os_str());
        assert!(!qemu_args(&spec(), [3, 4, 5]).iter().any(|x| x == "-bios"));
    }

    #[test]
    fn command_line() {
        let s = spec();
        assert_eq!(
            kernel_cmdline(&s),
            format!("console=ttyS0 rdinit=/.kvmrun/init panic=-1 {BOOT_ARGS} {TCG_BOOT_ARGS} quiet loglevel=7")
        );
        let v = Spec {
            verbose: true,
            append: None,
            ..s.clone()
        };
        assert_eq!(
            kernel_cmdline(&v),
            format!("console=ttyS0 rdinit=/.kvmrun/init panic=-1 {BOOT_ARGS} {TCG_BOOT_ARGS}")
        );
        let kvm = Spec {
            accel: Accel::Kvm,
            ..v.clone()
        };
        assert_eq!(
            kernel_cmdline(&kvm),
            format!("console=ttyS0 rdinit=/.kvmrun/init panic=-1 {BOOT_ARGS}")
        );
        let a: Vec<String> = qemu_args(&s, [7, 8, 9])
            .iter()
            .map(|x| x.to_string_lossy().into_owned())
            .collect();
        let joined = a.join(" ");
        assert!(joined.starts_with(
            "-nodefaults -no-user-config -no-reboot -display none -accel tcg -m 128M -smp 2 "
        ));
        assert!(joined
            .contains("-chardev file,id=kvmrun0,path=/proc/self/fd/7 -serial chardev:kvmrun0"));
        assert!(joined
            .contains("-chardev file,id=kvmrun2,path=/proc/self/fd/9 -serial chardev:kvmrun2"));
        assert!(
            joined.contains("-kernel /boot/vmlinuz -initrd /tmp/x/initrd -append console=ttyS0")
        );
        let k = Spec {
            kernel_fd: Some(5),
            ..s.clone()
        };
        let a: Vec<String> = qemu_args(&k, [7, 8, 9])
            .iter()
            .map(|x| x.to_string_lossy().into_owned())
            .collect();
        assert!(a.join(" ").contains("-kernel /proc/self/fd/5 -initrd"));
    }

    #[test]
    fn console_keeps_lone_carriage_returns() {
        let mut c = Console::default();
        c.relay(b"[ 1.0] a\r", false);
        c.relay(b"\nx\ry\r\n", false);
        let got: Vec<u8> = c.ring.iter().copied().collect();
        assert_eq!(got, b"[ 1.0] a\nx\ry\n");
        assert_eq!(c.tail(1), r#""x\ry""#);
    }

    #[test]
    fn console_tail_is_bounded() {
        let mut c = Console::default();
        for i in 0..10_000 {
            c.relay(format!("line {i}\n").as_bytes(), false);
        }
        assert!(c.ring.len() <= CONSOLE_RING);
        assert!(c.line.is_empty());
        assert_eq!(c.tail(2), r#""line 9998" | "line 9999""#);
        c.relay(&vec![b'x'; 100_000], false);
        assert_eq!(c.line.len(), MAX_WHY);
    }

    #[test]
    fn the_reason_comes_first_even_when_buried() {
        // What the 6.1 kernel prints when the first archive is not one,
        // then the panic it leads to, then the panic's own noise.
        let mut c = Console::default();
        c.relay(b"[    0.9] Initramfs unpacking failed: invalid magic at start of compressed archive\r\n", false);
        for i in 0..200 {
            c.relay(format!("[    1.{i}] noise line {i}\r\n").as_bytes(), false);
        }
        c.relay(
            b"[    2.0] Kernel panic - not syncing: No working init found.\r\n",
            false,
        );
        c.relay(b"[    2.1] ---[ end Kernel panic ]---\r\n", false);
        let why = c.why();
        assert!(
            why.starts_with(
                r#"the guest kernel said "[    0.9] Initramfs unpacking failed: invalid magic"#
            ),
            "{why}"
        );
        assert!(!c.tail(3).contains("Initramfs"), "it was buried");
        // A guest cannot forge message lines or escapes through it.
        let mut c = Console::default();
        c.relay(b"Kernel panic - not syncing: \x1b[2J\xff\n", false);
        assert_eq!(
            c.why(),
            r#"the guest kernel said "Kernel panic - not syncing: \x1b[2J\xff"; "#
        );
        assert_eq!(Console::default().why(), "");
    }
}
