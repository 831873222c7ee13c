//! The parent and the child of a run (see the crate docs for the layout):
//! clone into new namespaces, write the id maps, make a root caller's
//! idmapped mounts and send them over a socket (SCM_RIGHTS, unix(7)),
//! report the child's setup errors through a close-on-exec pipe, wait,
//! forward signals, and kill the whole PID namespace on --timeout.

use std::fs;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use rustix::fs::OFlags;
use rustix::mount::MountAttrFlags;

use filtertool::exit::{RUNNER_FAILED, TIMEOUT};
use filtertool::fail;

use crate::inroot::Kind;
use crate::userns::{self, IdMaps, Knobs};
use crate::{caps, execute, fds, kernel, setup, Options};

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
    // SAFETY: set is the sigset_t inside a live SigSet, info a zeroed
    // siginfo_t the kernel may write, and ts a local that outlives the
    // call. (nix wraps sigwait, not sigtimedwait: no timeout.)
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

/// Opens DIR once: `O_PATH|O_DIRECTORY|O_NOFOLLOW`, so a symlink swapped in
/// for it (or DIR itself being one) is refused rather than followed, and
/// every later step uses this descriptor (fchdir, open_tree).
fn open_dir(dir: &Path, shown: &str) -> anyhow::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(dir, flags, rustix::fs::Mode::empty()).map_err(|e| {
        let why = match fs::symlink_metadata(dir) {
            Ok(md) if md.file_type().is_symlink() => {
                "a symbolic link; chrootrun follows none for DIR (name the directory itself)"
                    .to_string()
            }
            Ok(md) if !md.is_dir() => "not a directory".to_string(),
            _ => Errno::from_raw(e.raw_os_error()).desc().to_string(),
        };
        fail(RUNNER_FAILED, format!("{shown}: {why}"))
    })
}

/// The name of the filesystem at `fd`, for the idmapping refusal.
fn fs_name(fd: BorrowedFd<'_>) -> String {
    let Ok(st) = rustix::fs::fstatfs(fd) else {
        return "its filesystem".into();
    };
    // Magic numbers from include/uapi/linux/magic.h.
    let name = match st.f_type as u64 {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x858_458F6 => "ramfs",
        0x7371_7368 => "squashfs",
        0xF2F5_2010 => "f2fs",
        0x4d44 => "vfat",
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x1cd1 => "devpts",
        other => return format!("its filesystem (type 0x{other:x})"),
    };
    format!("its filesystem ({name})")
}

/// The host-side steps for a root caller (see [`setup::host`]), for real.
struct HostNix<'a> {
    opts: &'a Options,
    dir: &'a OwnedFd,
    child: Pid,
    maps: &'a IdMaps,
    userns: Option<OwnedFd>,
}

/// A refused clone or idmap as one line; EINVAL is the filesystem's refusal.
fn refused(what: &str, fd: BorrowedFd<'_>, step: &str, e: Errno) -> anyhow::Error {
    let why = if e == Errno::EINVAL {
        format!(
            "{} cannot be idmapped ({step}: {}); --host-root runs the program with the caller's own ids instead (unsafe: the program is then host root)",
            fs_name(fd),
            e.desc()
        )
    } else {
        format!("{step}: {}", e.desc())
    };
    fail(RUNNER_FAILED, format!("{what}: {why}"))
}

impl kernel::Host for HostNix<'_> {
    type Mount = OwnedFd;

    fn open_userns(&mut self) -> anyhow::Result<()> {
        let path = format!("/proc/{}/ns/user", self.child);
        let fd = rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| {
            fail(
                RUNNER_FAILED,
                format!(
                    "opening the container's user namespace: {}",
                    Errno::from_raw(e.raw_os_error()).desc()
                ),
            )
        })?;
        self.userns = Some(fd);
        Ok(())
    }

    fn clone_dir(&mut self, attrs: MountAttrFlags) -> anyhow::Result<OwnedFd> {
        let ns = self.userns.as_ref().map(|u| u.as_fd());
        kernel::idmapped_clone(self.dir.as_fd(), ns, attrs, false)
            .map_err(|(step, e)| refused(&self.opts.program.dir, self.dir.as_fd(), step, e))
    }

    fn clone_source(
        &mut self,
        source: &Path,
        shown: &str,
        idmap: bool,
        attrs: MountAttrFlags,
    ) -> anyhow::Result<OwnedFd> {
        let src = rustix::fs::open(
            source,
            OFlags::PATH | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| {
            fail(
                RUNNER_FAILED,
                format!("{shown}: {}", Errno::from_raw(e.raw_os_error()).desc()),
            )
        })?;
        let ns = if idmap {
            self.userns.as_ref().map(|u| u.as_fd())
        } else {
            writable_for_the_container(shown, &src, self.maps)?;
            None
        };
        kernel::idmapped_clone(src.as_fd(), ns, attrs, true)
            .map_err(|(step, e)| refused(shown, src.as_fd(), step, e))
    }
}

/// A writable bind directory owned by an id outside the container's (the
/// host's root, typically) and closed to others could not be written by
/// the program: say so now, with the fix, rather than let it fail later
/// with EACCES.
fn writable_for_the_container(shown: &str, src: &OwnedFd, maps: &IdMaps) -> anyhow::Result<()> {
    let Ok(st) = rustix::fs::fstat(src) else {
        return Ok(());
    };
    let dir = rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir();
    let Some((start, count)) = maps.uid_range() else {
        return Ok(());
    };
    let inside = (start..start + count).contains(&u64::from(st.st_uid));
    if !dir || inside || st.st_mode & 0o002 != 0 {
        return Ok(());
    }
    Err(fail(
        RUNNER_FAILED,
        format!(
            "{shown}: owned by host uid {}, which the container's ids ({start}-{}) do not include, so the program could not write to it; give it to the container's root with `chown {start}:{}`, or bind it read-only (--ro-bind)",
            st.st_uid,
            start + count - 1,
            maps.gid_range().map_or(start, |(g, _)| g),
        ),
    ))
}

/// Runs the container and returns the code to exit with.
pub fn run(opts: &Options) -> anyhow::Result<u8> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let dir = open_dir(&opts.root, &opts.program.dir)?;
    let idmap = euid == 0 && !opts.host_root;
    let maps = if euid == 0 && opts.host_root {
        IdMaps::identity(
            &fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
            &fs::read_to_string("/proc/self/gid_map").unwrap_or_default(),
        )
    } else if euid == 0 {
        IdMaps::for_root(&userns::root_ranges())
    } else {
        IdMaps::for_user(euid, egid)
    };
    let (sock, child_sock) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;

    // Always a PID namespace, so the program can signal no host process
    // and nothing it starts outlives it: when its PID 1 dies the kernel
    // kills every process left in it (pid_namespaces(7)). Always new UTS
    // and IPC namespaces too (bwrap's --unshare-all): the host's name and
    // System V IPC objects are not the program's.
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if opts.net {
        flags |= CloneFlags::CLONE_NEWNET;
    }

    // The child's cwd is DIR, entered by descriptor: the copy of the mount
    // namespace takes the cwd along (copy_mnt_ns in fs/namespace.c), and
    // the child clones its tree from there, never naming DIR again.
    rustix::process::fchdir(&dir).map_err(|e| {
        fail(
            RUNNER_FAILED,
            format!(
                "{}: {}",
                opts.program.dir,
                Errno::from_raw(e.raw_os_error()).desc()
            ),
        )
    })?;

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
            drop(sock);
            drop(err_r);
            child_main(opts, child_sock, err_w, &old, idmap)
        }
        Ok(Some(pid)) => pid,
    };
    let started = Instant::now();
    drop(child_sock);
    drop(err_w);
    let mut reaper = Reaper(Some(child));

    let mapped = if opts.map_users && euid != 0 {
        userns::map_subordinate(child, euid, egid)
            .map_err(|e| fail(RUNNER_FAILED, format!("{e:#}")))
    } else {
        maps.write(child)
    };
    if let Err(e) = mapped {
        let mut msg = format!("setting up the user namespace: {e:#}");
        if let Some(k) = userns::knob(euid, &Knobs::read(Path::new("/proc"))) {
            msg.push_str(&format!(" ({k})"));
        }
        return Err(fail(RUNNER_FAILED, msg));
    }
    // The container's root may be our uid: without this it could ptrace
    // us (same owner) and reach the host through our cwd.
    let _ = nix::sys::prctl::set_dumpable(false);
    let mut send: Vec<OwnedFd> = Vec::new();
    if idmap {
        let mut h = HostNix {
            opts,
            dir: &dir,
            child,
            maps: &maps,
            userns: None,
        };
        let (root, binds) = setup::host(&mut h, &opts.plan)?;
        send.push(root);
        send.extend(binds);
    }
    drop(dir);
    let raw: Vec<RawFd> = send.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [std::io::IoSlice::new(b"G")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        if raw.is_empty() { &[] } else { &cmsg },
        MsgFlags::empty(),
        None,
    )
    .context("starting the container")?;
    drop(send);
    drop(sock);

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
        // The program is in a session of its own, so a signal from the
        // terminal reached only us: pass every one on.
        let _ = kill(child, sig);
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

/// The child: wait for the id maps (and a root caller's idmapped mounts),
/// leave the caller's session, set up, exec (or be the tiny init).
fn child_main(opts: &Options, sock: OwnedFd, err_w: OwnedFd, mask: &SigSet, idmap: bool) -> ! {
    // Die with chrootrun, so nothing outlives a killed runner.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // Before the first mount, while the host's /proc lists our fds, and
    // before the mounts arrive (they are O_PATH handles too).
    fds::close_host_paths();
    let given = match receive(&sock) {
        Ok(fds) => fds,
        // The parent failed (and said so) or died.
        // SAFETY: _exit(2) takes no pointers and ends the process at once,
        // running no destructors or atexit handlers: nothing of the
        // parent's copied state (locks, buffers) is touched.
        Err(_) => unsafe { libc::_exit(i32::from(RUNNER_FAILED)) },
    };
    drop(sock);
    let given = if idmap {
        let mut it = given.into_iter();
        let Some(root) = it.next() else {
            report(
                err_w,
                &fail(RUNNER_FAILED, "the idmapped root did not arrive"),
            );
        };
        let binds = it
            .map(|fd| {
                let kind = match rustix::fs::fstat(&fd) {
                    Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Kind::Dir,
                    _ => Kind::File,
                };
                (fd, kind)
            })
            .collect();
        Some(setup::Given { root, binds })
    } else {
        None
    };
    if let Err(e) = setup::run(&mut kernel::Nix, &opts.plan, given) {
        report(err_w, &e);
    }
    if opts.proc {
        exec_or_report(opts, err_w, mask);
    }
    // SAFETY: this is the child that clone_process made, a new process
    // with one thread, and nothing in child_main starts another: the
    // forked child inherits no lock another thread held and may allocate.
    match unsafe { fork() } {
        Err(e) => report(err_w, &fail(RUNNER_FAILED, format!("fork: {e}"))),
        Ok(ForkResult::Child) => exec_or_report(opts, err_w, mask),
        Ok(ForkResult::Parent { child }) => {
            drop(err_w);
            // The program keeps fewer capabilities than this init: no
            // ptrace of it (ptrace_may_access wants a superset).
            let _ = nix::sys::prctl::set_dumpable(false);
            tiny_init(child)
        }
    }
}

/// The start byte and the mounts the parent sends.
fn receive(sock: &OwnedFd) -> anyhow::Result<Vec<OwnedFd>> {
    let mut buf = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 250]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("waiting for the parent")?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().context("reading the parent's mounts")? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(raw.into_iter().map(kernel::owned));
        }
    }
    if msg.bytes != 1 {
        anyhow::bail!("the parent went away");
    }
    Ok(fds)
}

fn exec_or_report(opts: &Options, err_w: OwnedFd, mask: &SigSet) -> ! {
    // Rust ignores SIGPIPE and we block the watched signals; an ignored or
    // blocked signal stays so across execve, so restore both.
    // SAFETY: SigDfl installs no handler, so no code of ours can run in
    // signal context (signal(2) is unsafe only for handlers).
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
    if let Err(e) = caps::drop_to(opts.caps) {
        report(err_w, &fail(RUNNER_FAILED, format!("{e:#}")));
    }
    let e = execute::exec(&opts.program);
    report(err_w, &e)
}

fn report(err_w: OwnedFd, e: &anyhow::Error) -> ! {
    let code = filtertool::failure_code(e).unwrap_or(RUNNER_FAILED);
    let mut msg = vec![code];
    msg.extend_from_slice(filtertool::one_line(e).as_bytes());
    let _ = fs::File::from(err_w).write_all(&msg);
    // SAFETY: _exit(2) takes no pointers and ends the process at once,
    // without running destructors or atexit handlers, which a forked child
    // must not run twice.
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
        } else {
            if let Ok(sig) = Signal::try_from(info.si_signo) {
                let _ = kill(program, sig);
            }
        }
    };
    // SAFETY: _exit(2) takes no pointers and ends the process at once,
    // without running destructors or atexit handlers, which a forked child
    // must not run twice.
    unsafe { libc::_exit(i32::from(code)) }
}
