//! Closing the descriptors a caller left open that name a place in the
//! host's file tree, before the container is set up so that none of them
//! is a way back to the host from inside.
//!
//! A directory fd is a way out of any chroot or pivot_root: the root only
//! bounds path lookups that start at `/` or the cwd, while `openat(fd, "..")`
//! and `/proc/self/fd/N/...` start at the fd (openat(2)). runc's
//! CVE-2024-21626 was exactly this: an `O_PATH` fd of the host's
//! /sys/fs/cgroup reached the container, and `WORKDIR /proc/self/fd/N` put
//! the process in the host's tree (CVE-2019-5736 was its cousin through
//! /proc/self/exe). runc and crun therefore close, or mark close-on-exec,
//! every fd but the ones asked for; bwrap and `unshare` pass them all
//! through. We take the middle path: ordinary files, pipes and sockets stay,
//! because callers hand them down on purpose (make's jobserver pipe,
//! systemd's LISTEN_FDS, `3>log`) and they give no path access; what goes is
//! every directory and every `O_PATH` handle (of a directory, symlink, file
//! or mount), which exist only to have paths resolved against them.
//!
//! This runs in the child right after it was cloned, before the first mount:
//! the host's /proc is still there to list /proc/self/fd, and none of the
//! setup's own fds (open_tree and fsmount handles, all CLOEXEC) exist yet.
//! Closing rather than setting FD_CLOEXEC matters for --timeout without
//! --proc, where the child never execs but stays as the container's PID 1.

use std::fs;
use std::os::fd::{AsRawFd, RawFd};

/// Whether `fd` is a directory or an `O_PATH` handle. `false` for a closed fd.
pub fn is_path_handle(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFL) only reads the fd's flags; a bad fd is EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return false;
    }
    if flags & libc::O_PATH != 0 {
        return true;
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: st is valid for writing a struct stat.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled st.
    let st = unsafe { st.assume_init() };
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// The open fds, from /proc/self/fd; `None` if /proc is not mounted.
pub fn listed() -> Option<Vec<RawFd>> {
    let dir = fs::read_dir("/proc/self/fd").ok()?;
    let mut fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    // The listing's own fd is among them, closed by now: is_path_handle
    // says false for it.
    Some(fds)
}

/// The fds to look at without /proc: every number below the soft
/// RLIMIT_NOFILE, the bound on the fds a process may open.
fn up_to_the_limit() -> Vec<RawFd> {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    // RLIM_INFINITY comes back as None: every number an fd can have.
    let top = lim
        .current
        .map_or(RawFd::MAX, |n| RawFd::try_from(n).unwrap_or(RawFd::MAX));
    (0..top).collect()
}

/// Closes every inherited directory or `O_PATH` fd. One on stdin, stdout or
/// stderr is replaced by /dev/null instead, so the program's next `open`
/// does not land on 0–2.
pub fn close_host_paths() {
    let fds = listed().unwrap_or_else(up_to_the_limit);
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok();
    for fd in fds {
        if !is_path_handle(fd) {
            continue;
        }
        match &null {
            // SAFETY: dup2(2) takes two numbers, no pointers: n is our
            // open /dev/null, and fd 0-2 are owned by no Rust object (std's
            // stdio handles only use the numbers), so none is invalidated.
            Some(n) if fd <= 2 => unsafe {
                libc::dup2(n.as_raw_fd(), fd);
            },
            // SAFETY: the fd is an inherited one nothing in this process
            // owns (our own fds are pipes and CLOEXEC files, never dirs).
            _ => unsafe {
                libc::close(fd);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    // No test here closes fds: the harness's other threads own some.
    #[test]
    fn directories_and_o_path_handles_are_path_handles() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        let dir = fs::File::open(t.path()).unwrap();
        assert!(is_path_handle(dir.as_raw_fd()));
        use rustix::fs::{Mode, OFlags};
        let path = rustix::fs::open(&f, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        assert!(is_path_handle(path.as_raw_fd()));
        drop(path);
        let file = fs::File::open(&f).unwrap();
        assert!(!is_path_handle(file.as_raw_fd()));
        let (r, w) = std::io::pipe().unwrap();
        assert!(!is_path_handle(r.as_raw_fd()));
        assert!(!is_path_handle(w.as_raw_fd()));
        drop((r, w));
        assert!(!is_path_handle(-1));
    }

    #[test]
    fn the_listing_holds_an_open_fd() {
        let t = tempfile::tempdir().unwrap();
        let dir = fs::File::open(t.path()).unwrap();
        let fds = listed().expect("/proc is mounted");
        assert!(fds.contains(&dir.as_raw_fd()), "{fds:?}");
        assert!(fds.contains(&0) || fds.contains(&1) || fds.contains(&2));
        let all = up_to_the_limit();
        assert!(all.contains(&dir.as_raw_fd()));
    }
}
