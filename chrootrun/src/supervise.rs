//! The parent and the child of a run (see the crate docs for the layout):
//! clone into new namespaces, write the id maps, report the child's setup
//! errors through a close-on-exec pipe, wait, forward signals, and kill the
//! whole PID namespace on --timeout.

use std::fs;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use filtertool::exit::{RUNNER_FAILED, TIMEOUT};
use filtertool::fail;

use crate::userns::{self, IdMaps, Knobs};
use crate::{execute, fds, kernel, setup, Options};

/// The signals the parent (and the tiny init) handle synchronously.
/// How long a --proc program has to act on a forwarded signal before it
/// is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

fn watched() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        s.add(sig);
    }
    s
}

/// `clone(2)` with fork semantics (no new stack) so the child can be born
/// in new namespaces — with CLONE_NEWPID it is PID 1 of the new one, which
/// `unshare` + `fork` would need one more process for.
fn clone_process(flags: CloneFlags) -> nix::Result<Option<Pid>> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a NULL stack clone behaves as fork; we are single-threaded
    // (clone with CLONE_NEWUSER needs that anyway), so no lock is held.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match Errno::result(ret)? {
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// Kills and reaps the child unless disarmed, so no error path leaves it.
struct Reaper(Option<Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

fn status_code(s: WaitStatus) -> Option<u8> {
    match s {
        WaitStatus::Exited(_, code) => Some(code as u8),
        WaitStatus::Signaled(_, sig, _) => Some(128u8.wrapping_add(sig as u8)),
        _ => None,
    }
}

/// sigtimedwait(2); `None` when the time ran out or a handler interrupted.
fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Option<libc::siginfo_t> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: set and info are valid for the call; ts outlives it.
    let ret = unsafe {
        match timeout {
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
                };
                libc::sigtimedwait(set.as_ref(), info.as_mut_ptr(), &ts)
            }
            None => libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()),
        }
    };
    // SAFETY: on success the kernel filled info.
    (ret > 0).then(|| unsafe { info.assume_init() })
}

/// Runs the container and returns the code to exit with.
pub fn run(opts: &Options) -> anyhow::Result<u8> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let maps = IdMaps::for_caller(
        euid,
        egid,
        &fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
        &fs::read_to_string("/proc/self/gid_map").unwrap_or_default(),
    );
    let (sync_r, sync_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;

    // A PID namespace where asked for (--proc) or where everything the
    // program starts must be killable (--timeout): when its PID 1 dies
    // the kernel kills every process left in it (pid_namespaces(7)).
    // Not by default: creating and tearing one down, plus the tiny init's
    // fork, costs more than the whole run of a small container (measured
    // 2.0 ms -> 4.8 ms for hello), and `unshare -r chroot` has none either.
    let pid_ns = opts.proc || opts.timeout.is_some();
    let mut flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    if pid_ns {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if opts.net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if opts.plan.hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }

    let set = watched();
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).context("sigprocmask")?;

    let child = match clone_process(flags) {
        Err(errno) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            return Err(fail(
                RUNNER_FAILED,
                userns::refusal(errno, euid, &Knobs::read(Path::new("/proc"))),
            ));
        }
        Ok(None) => {
            drop(sync_w);
            drop(err_r);
            child_main(
                opts,
                sync_r,
                err_w,
                &old,
                opts.timeout.is_some() && !opts.proc,
            )
        }
        Ok(Some(pid)) => pid,
    };
    let started = Instant::now();
    drop(sync_r);
    drop(err_w);
    let mut reaper = Reaper(Some(child));

    if let Err(e) = maps.write(child) {
        let mut msg = format!("setting up the user namespace: {e:#}");
        if let Some(k) = userns::knob(euid, &Knobs::read(Path::new("/proc"))) {
            msg.push_str(&format!(" ({k})"));
        }
        return Err(fail(RUNNER_FAILED, msg));
    }
    // The container's root is our uid: without this it could ptrace us
    // (same owner) and reach the host through our cwd.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let mut sync_w = fs::File::from(sync_w);
    sync_w.write_all(b"G").context("starting the container")?;
    drop(sync_w);

    // EOF means the program was exec'd; anything else is the child's error.
    let mut report = Vec::new();
    fs::File::from(err_r)
        .read_to_end(&mut report)
        .context("reading the container's report")?;
    if let Some((&code, msg)) = report.split_first() {
        let mut msg = String::from_utf8_lossy(msg).into_owned();
        if code == RUNNER_FAILED && (msg.contains("EPERM") || msg.contains("EACCES")) {
            if let Some(k) = userns::knob(euid, &Knobs::read(Path::new("/proc"))) {
                msg.push_str(&format!(" ({k})"));
            }
        }
        return Err(fail(code, msg));
    }

    let deadline = opts.timeout.map(|t| started + t);
    let mut interrupts = 0;
    // With --proc the program is PID 1 and gets only the signals it
    // catches; one that it ignores is followed by SIGKILL after a grace
    // period, as `docker stop` does, so a supervisor's SIGTERM always ends
    // the container.
    let mut kill_at: Option<Instant> = None;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(s) => {
                if let Some(code) = status_code(s) {
                    reaper.0 = None;
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the container"),
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) {
            let _ = kill(child, Signal::SIGKILL);
            kill_at = None;
        }
        let now = Instant::now();
        let left = deadline.map(|d| d.saturating_duration_since(now));
        if left == Some(Duration::ZERO) {
            // The child is PID 1 of its namespace: killing it kills all.
            drop(reaper);
            let secs = opts.timeout.map_or(0.0, |t| t.as_secs_f64());
            return Err(fail(
                TIMEOUT,
                format!("timed out after {secs}s: killed the container"),
            ));
        }
        let grace = kill_at.map(|t| t.saturating_duration_since(now));
        let Some(info) = wait_signal(&set, [left, grace].into_iter().flatten().min()) else {
            continue;
        };
        if info.si_signo == libc::SIGCHLD {
            continue;
        }
        let Ok(sig) = Signal::try_from(info.si_signo) else {
            continue;
        };
        // A signal from the terminal (SI_KERNEL) reached the whole process
        // group, the program included; pass on only those sent to us.
        let from_tty = info.si_code == libc::SI_KERNEL;
        if !from_tty {
            let _ = kill(child, sig);
        }
        if opts.proc {
            // As PID 1 the program gets only signals it catches (the
            // kernel's rule for namespace init); a second one kills it.
            interrupts += 1;
            if interrupts >= 2 {
                let _ = kill(child, Signal::SIGKILL);
            } else {
                kill_at = Some(Instant::now() + STOP_GRACE);
            }
        }
    }
}

/// The child: wait for the id maps, set up, exec (or be the tiny init).
fn child_main(opts: &Options, sync_r: OwnedFd, err_w: OwnedFd, mask: &SigSet, init: bool) -> ! {
    // Die with chrootrun, so nothing outlives a killed runner.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut go = [0u8; 1];
    if fs::File::from(sync_r).read_exact(&mut go).is_err() {
        // The parent failed (and said so) or died.
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(i32::from(RUNNER_FAILED)) }
    }
    // Before the first mount, while the host's /proc lists our fds (issue 8).
    fds::close_host_paths();
    if let Err(e) = setup::run(&mut kernel::Nix, &opts.plan) {
        report(err_w, &e);
    }
    if !init {
        exec_or_report(opts, err_w, mask);
    }
    // SAFETY: fork in a single-threaded process.
    match unsafe { fork() } {
        Err(e) => report(err_w, &fail(RUNNER_FAILED, format!("fork: {e}"))),
        Ok(ForkResult::Child) => exec_or_report(opts, err_w, mask),
        Ok(ForkResult::Parent { child }) => {
            drop(err_w);
            tiny_init(child)
        }
    }
}

fn exec_or_report(opts: &Options, err_w: OwnedFd, mask: &SigSet) -> ! {
    // Rust ignores SIGPIPE and we block the watched signals; an ignored or
    // blocked signal stays so across execve, so restore both.
    // SAFETY: setting a default disposition.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
    let e = execute::exec(&opts.program);
    report(err_w, &e)
}

fn report(err_w: OwnedFd, e: &anyhow::Error) -> ! {
    let code = filtertool::failure_code(e).unwrap_or(RUNNER_FAILED);
    let mut msg = vec![code];
    msg.extend_from_slice(filtertool::one_line(e).as_bytes());
    let _ = fs::File::from(err_w).write_all(&msg);
    // SAFETY: _exit is always safe.
    unsafe { libc::_exit(i32::from(code)) }
}

/// PID 1 for --timeout without --proc: reaps, forwards signals, exits with
/// the program's status (which kills whatever else is left in the
/// namespace).
fn tiny_init(program: Pid) -> ! {
    let set = watched();
    let code = loop {
        let Some(info) = wait_signal(&set, None) else {
            continue;
        };
        if info.si_signo == libc::SIGCHLD {
            let mut done = None;
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(s) if s.pid() == Some(program) => done = status_code(s).or(done),
                    Ok(_) => {}
                }
            }
            if let Some(c) = done {
                break c;
            }
        } else if info.si_code != libc::SI_KERNEL {
            if let Ok(sig) = Signal::try_from(info.si_signo) {
                let _ = kill(program, sig);
            }
        }
    };
    // SAFETY: _exit is always safe.
    unsafe { libc::_exit(i32::from(code)) }
}
