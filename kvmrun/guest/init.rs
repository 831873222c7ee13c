//! kvmrun's guest init: PID 1 inside the VM.
//!
//! `kvmrun` appends this program, statically linked, to the image's initrd
//! as `/.kvmrun/init` and boots with `rdinit=/.kvmrun/init`, so an image
//! needs no busybox or shell of its own. It is built by
//! `kvmrun/build.rs` with plain `rustc` (std only, no crates): the few libc
//! calls it needs are declared below and resolved by the static glibc.
//!
//! What it does, in order:
//! 1. mounts devtmpfs on /dev, proc on /proc and sysfs on /sys, creating the
//!    directories where the image lacks them;
//! 2. opens the three serial ports kvmrun gives the VM: ttyS0 (the console,
//!    which becomes the program's stderr), ttyS1 (the program's stdout) and
//!    ttyS2 (our report channel), and puts them in raw mode, because a tty
//!    turns `\n` into `\r\n` (ONLCR) and stdout must arrive byte for byte;
//! 3. says `ready` on ttyS2, so kvmrun knows the kernel reached userspace;
//! 4. runs the command from `/.kvmrun/argv` (NUL-separated arguments, put
//!    there by kvmrun; `/init` when the file is empty) with stdin from
//!    /dev/null, waits for it while reaping every orphan that is reparented
//!    to PID 1;
//! 5. drains ttyS1 and ttyS0 (so all output reached the host before the
//!    report: kvmrun ends the VM as soon as the report is in),
//!    writes `exit N`, `signal N` or `error CODE MESSAGE` on ttyS2, syncs
//!    and powers the machine off.
//!
//! The report protocol is one line per message, parsed by
//! `kvmrun::report`. If anything here fails before the report, the error
//! goes to the console and the report says `error 125 ...`; if PID 1 itself
//! dies, the kernel panics and kvmrun sees no report (exit 125 there too).

use std::ffi::{CString, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::raw::{c_char, c_int, c_uint, c_ulong, c_void};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

extern "C" {
    fn mount(
        source: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> c_int;
    fn reboot(cmd: c_int) -> c_int;
    fn sync();
    fn klogctl(kind: c_int, buf: *mut c_char, len: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn tcgetattr(fd: c_int, t: *mut Termios) -> c_int;
    fn tcsetattr(fd: c_int, action: c_int, t: *const Termios) -> c_int;
    fn cfmakeraw(t: *mut Termios);
    fn tcdrain(fd: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
}

/// glibc's `struct termios` on Linux (bits/termios-struct.h): four flag
/// words, c_line, 32 control characters, then the two speeds.
#[repr(C)]
struct Termios {
    c_iflag: c_uint,
    c_oflag: c_uint,
    c_cflag: c_uint,
    c_lflag: c_uint,
    c_line: u8,
    c_cc: [u8; 32],
    c_ispeed: c_uint,
    c_ospeed: c_uint,
}

const MS_NOSUID: c_ulong = 2;
const MS_NODEV: c_ulong = 4;
const MS_NOEXEC: c_ulong = 8;
const TCSANOW: c_int = 0;
/// termios.h: ignore modem control lines, so an open never waits for DCD.
const CLOCAL: c_uint = 0o4000;
const F_GETFL: c_int = 3;
const F_SETFL: c_int = 4;
const O_NONBLOCK: c_int = 0o4000;
const O_NOCTTY: c_int = 0o400;
const EINTR: i32 = 4;
/// linux/reboot.h: LINUX_REBOOT_CMD_POWER_OFF.
const RB_POWER_OFF: c_int = 0x4321_fedc_u32 as c_int;
/// syslog(2): SYSLOG_ACTION_CONSOLE_OFF, so the kernel's "reboot: Power
/// down" line does not end every quiet run.
const SYSLOG_ACTION_CONSOLE_OFF: c_int = 6;

const ARGV_FILE: &str = "/.kvmrun/argv";
const VERBOSE_FILE: &str = "/.kvmrun/verbose";

fn main() {
    // Whatever happens, end by powering off: if PID 1 returned or
    // panicked the kernel would panic, which kvmrun also catches, but a
    // clean report is better.
    let verbose = fs::metadata(VERBOSE_FILE).is_ok();
    let report = run();
    power_off(report, verbose);
}

/// The report channel, opened as early as possible so that errors in the
/// later steps can be reported on it.
struct Ports {
    report: Option<File>,
}

fn run() -> Option<File> {
    let mut ports = Ports { report: None };
    let line = match run_inner(&mut ports) {
        Ok(line) => line,
        Err((code, msg)) => {
            // kvmrun prints the report's message; the console is the
            // fallback when the report channel itself failed.
            if ports.report.is_none() {
                let _ = writeln!(io::stderr(), "kvmrun-init: {msg}");
            }
            format!("error {code} {msg}")
        }
    };
    if let Some(f) = ports.report.as_mut() {
        let _ = f.write_all(format!("{line}\n").as_bytes());
        drain(f);
    }
    ports.report
}

type Failed = (u8, String);

fn run_inner(ports: &mut Ports) -> Result<String, Failed> {
    // The kernel's own initramfs has /dev, but the image's may replace it;
    // /proc and /sys are often missing from minimal images.
    for dir in ["/dev", "/proc", "/sys"] {
        let _ = fs::create_dir(dir);
    }
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID)?;
    mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)?;
    mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)?;

    ports.report = Some(open_port("/dev/ttyS2")?);
    if let Some(f) = ports.report.as_mut() {
        let _ = f.write_all(b"ready\n");
    }
    let stdout = open_port("/dev/ttyS1")?;
    let console = open_port("/dev/ttyS0")?;

    let argv = read_argv()?;
    let (prog, args) = match argv.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => (OsString::from("/init"), Vec::new()),
    };

    let mut cmd = Command::new(&prog);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(|e| fail("ttyS1", e))?)
        .stderr(console.try_clone().map_err(|e| fail("ttyS0", e))?)
        .current_dir("/");
    if std::env::var_os("PATH").is_none() {
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    // A process group of its own, as a shell would give a job.
    cmd.process_group(0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let name = prog.to_string_lossy().into_owned();
            return Err(match e.kind() {
                io::ErrorKind::NotFound => (127, format!("{name}: command not found in the image")),
                _ => (126, format!("{name}: cannot execute: {e}")),
            });
        }
    };
    let pid = child.id() as c_int;
    let status = reap_until(pid)?;
    // kvmrun ends the VM once the report is in: the program's stderr on
    // the console must be out by then too.
    drain(&stdout);
    drain(&console);
    Ok(status)
}

/// Waits for `pid`, reaping any other child (orphans are reparented to us)
/// on the way. Returns the report line for `pid`'s end.
fn reap_until(pid: c_int) -> Result<String, Failed> {
    loop {
        let mut st: c_int = 0;
        // SAFETY: waitpid(2) writes one int through the pointer, and st
        // is a live local int.
        let got = unsafe { waitpid(-1, &mut st, 0) };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(EINTR) {
                continue;
            }
            return Err((125, format!("waiting for the command: {e}")));
        }
        if got != pid {
            continue;
        }
        // wait(2) status layout: low 7 bits the signal, else exit code in
        // bits 8..16.
        let sig = st & 0x7f;
        if sig == 0 {
            return Ok(format!("exit {}", (st >> 8) & 0xff));
        }
        if sig != 0x7f {
            return Ok(format!("signal {sig}"));
        }
    }
}

fn read_argv() -> Result<Vec<OsString>, Failed> {
    let raw = match fs::read(ARGV_FILE) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail(ARGV_FILE, e)),
    };
    let mut out = Vec::new();
    // NUL-terminated arguments: the last split piece is the empty tail.
    let mut pieces: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    for p in pieces {
        out.push(OsString::from_vec(p.to_vec()));
    }
    Ok(out)
}

fn mount_fs(source: &str, target: &str, fstype: &str, flags: c_ulong) -> Result<(), Failed> {
    let (s, t, f) = (cstr(source), cstr(target), cstr(fstype));
    // SAFETY: the three strings are NUL-terminated CStrings that outlive
    // the call, and devtmpfs, proc and sysfs take no data (NULL).
    let r = unsafe { mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, std::ptr::null()) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err((125, format!("mount {fstype} on {target}: {e}")));
    }
    Ok(())
}

/// Opens a serial port without becoming its controlling terminal and
/// without waiting for carrier, then makes it raw (`cfmakeraw`: no ONLCR,
/// no echo, no line editing, 8 bits) and local (CLOCAL).
fn open_port(path: &str) -> Result<File, Failed> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(O_NOCTTY | O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(path, e))?;
    let fd = f.as_raw_fd();
    // SAFETY: Termios is glibc's struct termios (a #[repr(C)] struct of
    // integers, so all zeros is a valid value), which tcgetattr(3) and
    // cfmakeraw(3) write and tcsetattr(3) reads; fd stays open while f
    // lives, and fcntl(2) F_GETFL/F_SETFL take an int, no pointer.
    unsafe {
        let mut t: Termios = std::mem::zeroed();
        if tcgetattr(fd, &mut t) != 0 {
            return Err(fail(path, io::Error::last_os_error()));
        }
        cfmakeraw(&mut t);
        t.c_cflag |= CLOCAL;
        if tcsetattr(fd, TCSANOW, &t) != 0 {
            return Err(fail(path, io::Error::last_os_error()));
        }
        let fl = fcntl(fd, F_GETFL);
        if fl < 0 || fcntl(fd, F_SETFL, fl & !O_NONBLOCK) != 0 {
            return Err(fail(path, io::Error::last_os_error()));
        }
    }
    Ok(f)
}

/// Waits until everything written to the port has left the UART, i.e. has
/// been handed to qemu and so to kvmrun's pipe.
fn drain(f: &File) {
    // SAFETY: tcdrain(3) takes only the descriptor, open while f lives.
    unsafe {
        while tcdrain(f.as_raw_fd()) != 0 {
            if io::Error::last_os_error().raw_os_error() != Some(EINTR) {
                break;
            }
        }
    }
}

fn power_off(report: Option<File>, verbose: bool) {
    drop(report);
    // SAFETY: klogctl(2) with CONSOLE_OFF reads no buffer (NULL, length
    // 0), sync(2) takes nothing, and reboot(2) takes an int; we are PID 1
    // in the guest with CAP_SYS_BOOT, so power-off ends the VM.
    unsafe {
        if !verbose {
            klogctl(SYSLOG_ACTION_CONSOLE_OFF, std::ptr::null_mut(), 0);
        }
        sync();
        reboot(RB_POWER_OFF);
    }
    // Only reached if reboot(2) failed: returning from PID 1 panics the
    // kernel, and kvmrun's `panic=-1` ends qemu then.
    let _ = writeln!(
        io::stderr(),
        "kvmrun-init: power off: {}",
        io::Error::last_os_error()
    );
}

fn cstr(s: &str) -> CString {
    // The strings are our own constants, without NULs.
    CString::new(s).unwrap_or_default()
}

fn fail(what: &str, e: io::Error) -> Failed {
    (125, format!("{what}: {e}"))
}
