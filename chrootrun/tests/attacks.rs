//! The ways a program inside chrootrun reached the host, each tried for
//! real as root and as an ordinary user (the escapes bubblewrap, runc and
//! crun each defend against): the tests pass when every attack is refused
//! and the host is unchanged.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Adds busybox applets the base tree lacks.
fn applets(t: &Path, names: &[&str]) {
    for a in names {
        let _ = symlink("busybox", t.join("bin").join(a));
    }
}

/// The attack probe, static, at /attack in `t`.
fn probe(f: &Fixture, t: &Path) {
    f.cc("attack.c", &t.join("attack"), true);
}

/// Restores a /proc/sys value on drop, so a failing test leaves the host as it was.
struct Sysctl {
    path: &'static str,
    value: String,
}

impl Sysctl {
    fn save(path: &'static str) -> Sysctl {
        Sysctl {
            path,
            value: fs::read_to_string(path).unwrap(),
        }
    }
    fn unchanged(&self) -> bool {
        fs::read_to_string(self.path).unwrap() == self.value
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if !self.unchanged() {
            let _ = fs::write(self.path, self.value.trim_end());
        }
    }
}

#[test]
fn proc_sys_core_pattern_and_hostname_writes_are_refused() {
    let core = Sysctl::save("/proc/sys/kernel/core_pattern");
    let host = Sysctl::save("/proc/sys/kernel/hostname");
    each_caller(|f| {
        let t = f.busybox("t");
        // The README's own invocation, with the attack as the program.
        let o = f.run(&[
            "--proc",
            "--dev",
            "--net",
            s(&t),
            "/bin/sh",
            "-c",
            "echo '|/bin/pwned' > /proc/sys/kernel/core_pattern; \
             echo pwned > /proc/sys/kernel/hostname; \
             cat /proc/sys/kernel/core_pattern",
        ]);
        let err = stderr(&o);
        assert!(err.contains("core_pattern: Read-only file system"), "{err}");
        assert!(err.contains("hostname: Read-only file system"), "{err}");
        assert!(core.unchanged(), "the host's core_pattern changed");
        assert!(host.unchanged(), "the host's name changed");
    });
}

#[test]
fn tiocsti_reaches_no_terminal() {
    each_caller(|f| {
        let t = f.busybox("t");
        probe(f, &t);
        f.own();
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave: std::os::fd::OwnedFd = pty.slave;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&slave);
        for proc in [false, true] {
            let mut cmd = f.command(&f.bin);
            if proc {
                cmd.arg("--proc");
            }
            cmd.args([s(&t), "/attack", "tiocsti", "echo INJECTED\n"]);
            cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // SAFETY: only async-signal-safe calls between fork and exec:
            // the caller's shell, as a session leader with the pty as its
            // controlling terminal.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let o = cmd.output().unwrap();
            let out = stdout(&o);
            assert_eq!(out, "tiocsti: EPERM\n", "--proc {proc}: {}", stderr(&o));
            // Nothing waits as input on the terminal.
            let flags = nix::fcntl::fcntl(&slave, nix::fcntl::FcntlArg::F_GETFL).unwrap();
            nix::fcntl::fcntl(
                &slave,
                nix::fcntl::FcntlArg::F_SETFL(
                    nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK,
                ),
            )
            .unwrap();
            let mut buf = [0u8; 64];
            let got = nix::unistd::read(&slave, &mut buf);
            assert_eq!(
                got,
                Err(nix::errno::Errno::EAGAIN),
                "input reached the terminal: {:?}",
                got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
            );
        }
    });
}

#[test]
fn a_swapped_dir_never_gives_the_hosts_root() {
    // Root caller, DIR inside a directory another user may change: that
    // user swaps DIR with a symlink to / in a loop while chrootrun starts.
    for caller in callers() {
        if caller.user.is_some() || !caller.userns_ok {
            continue;
        }
        let f = Fixture::new(caller);
        let parent = f.path("parent");
        fs::create_dir(&parent).unwrap();
        let t = f.busybox("parent/c");
        fs::write(t.join("CONTAINER"), "").unwrap();
        let link = parent.join("l");
        symlink("/", &link).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (a, b, stop) = (t.clone(), link.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &a,
                        rustix::fs::CWD,
                        &b,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let start = Instant::now();
        let (mut ran, mut refused, mut starts) = (0, 0, 0);
        while starts < 1000 && start.elapsed() < Duration::from_secs(30) {
            starts += 1;
            let o = Command::new(&f.bin)
                .args([
                    s(&t),
                    "/bin/sh",
                    "-c",
                    "test -e /CONTAINER && echo inside || echo ESCAPED",
                ])
                .output()
                .unwrap();
            let out = stdout(&o);
            assert!(
                !out.contains("ESCAPED"),
                "start {starts}: the host's / as root"
            );
            match o.status.code() {
                Some(0) => {
                    assert_eq!(out, "inside\n");
                    ran += 1;
                }
                Some(125) => refused += 1,
                other => panic!("start {starts}: {other:?} {}", stderr(&o)),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        eprintln!(
            "{starts} starts in {:?}: {ran} ran inside, {refused} refused a symlink; {swaps} swaps",
            start.elapsed()
        );
        assert!(starts >= 100, "only {starts} starts in 30 s");
        assert!(ran > 0 && refused > 0, "the race was never hit both ways");
    }
}

#[test]
fn read_only_mounts_stay_read_only_from_inside() {
    each_caller(|f| {
        let t = f.busybox("t");
        applets(&t, &["mount"]);
        probe(f, &t);
        let host = f.path("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("f"), "host data\n").unwrap();
        f.own();
        let ro_bind = format!("{}:/ro", s(&host));
        for mode in ["unlock", "nested-unlock"] {
            for target in ["/", "/ro"] {
                let o = f.run(&[
                    "--proc",
                    "--ro",
                    "--ro-bind",
                    &ro_bind,
                    s(&t),
                    "/bin/sh",
                    "-c",
                    &format!(
                        "/attack {mode} {target}; mount -o remount,rw {target} && echo remounted; \
                         echo changed > /ro/f; touch {target}/by-shell"
                    ),
                ]);
                let out = stdout(&o);
                assert!(!out.contains("mount_setattr: ok"), "{mode} {target}: {out}");
                assert!(!out.contains("remount: ok"), "{mode} {target}: {out}");
                assert!(!out.contains("create: ok"), "{mode} {target}: {out}");
                assert!(!out.contains("remounted"), "{mode} {target}: {out}");
                assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "host data\n");
                assert_eq!(
                    fs::read_dir(&host).unwrap().count(),
                    1,
                    "{mode}: a file was created"
                );
                assert!(!t.join("written").exists() && !t.join("by-shell").exists());
            }
        }
    });
}

#[test]
fn no_file_made_in_a_bind_is_a_setuid_file_of_host_root() {
    each_caller(|f| {
        let t = f.busybox("t");
        applets(&t, &["chmod", "chown", "cp", "stat"]);
        let out = f.path("out");
        fs::create_dir(&out).unwrap();
        fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
        f.own();
        let bind = format!("{}:/out", s(&out));
        if f.caller.user.is_none() {
            // Root's own 0755 build directory: the container's root is not
            // host root, so it could not write there; said up front.
            let o = f.run(&["--bind", &bind, s(&t), "/bin/echo"]);
            assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
            let e = stderr(&o);
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains("owned by host uid 0"), "{e}");
            // Its advice, followed: give the directory to the container's root.
            let ids = e
                .split("`chown ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit() && c != ':').next())
                .unwrap_or_else(|| panic!("no chown advice in {e}"));
            let (u, g) = ids.split_once(':').unwrap();
            nix::unistd::chown(
                &out,
                Some(u.parse::<u32>().unwrap().into()),
                Some(g.parse::<u32>().unwrap().into()),
            )
            .unwrap();
        }
        // Every id the container has, tried as the owner of a setuid copy of
        // busybox: root's, the last one, nobody's, and 65535 (which an idmap
        // showing host root as some container id would turn into host uid 0).
        let script = "for id in 0 1 65534 65535; do \
             cp /bin/busybox /out/suid-$id && chown $id:$id /out/suid-$id && \
             chmod 6755 /out/suid-$id; done; touch /out/plain; stat -c '%u %a' /out/suid-0";
        let o = f.run(&["--bind", &bind, s(&t), "/bin/sh", "-c", script]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "0 6755\n", "inside, root's setuid file");
        let mut seen = 0;
        for e in fs::read_dir(&out).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            seen += 1;
            assert!(
                md.uid() != 0 && md.gid() != 0,
                "{:?} is owned by host root: {} {} mode {:o}",
                e.file_name(),
                md.uid(),
                md.gid(),
                md.mode()
            );
        }
        assert!(seen >= 2, "nothing was created");
        if let Some((uid, gid)) = f.caller.user {
            let md = fs::metadata(out.join("suid-0")).unwrap();
            assert_eq!((md.uid(), md.gid()), (uid, gid));
        }
    });
}

#[test]
fn no_host_process_can_be_signalled() {
    each_caller(|f| {
        let t = f.busybox("t");
        applets(&t, &["kill"]);
        // A host process of the caller's own uid: the easiest to kill.
        let mut victim = f.command(Path::new("sleep")).arg("30").spawn().unwrap();
        let pid = victim.id().to_string();
        for proc in [false, true] {
            let mut args = vec![];
            if proc {
                args.push("--proc");
            }
            // Only the victim: `kill -9 -1` would, on a regressed runner,
            // kill every process of the machine (it did, once, with the
            // runner before PID namespaces were always on).
            let script = format!("kill -9 {pid}; echo done");
            args.extend([s(&t), "/bin/sh", "-c", &script]);
            let _ = f.run(&args);
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                victim.try_wait().unwrap().is_none(),
                "--proc {proc}: the host's sleep was killed"
            );
        }
        let _ = victim.kill();
        let _ = victim.wait();
    });
}

#[test]
fn a_read_only_stdin_cannot_be_reopened_for_writing() {
    each_caller(|f| {
        let t = f.busybox("t");
        f.own();
        // Root's file, readable by all: the caller may read it, not write
        // it (outside the fixture, which is given to the caller).
        let elsewhere = tempfile::tempdir_in("/tmp").unwrap();
        fs::set_permissions(elsewhere.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let file = elsewhere.path().join("stdin-file");
        fs::write(&file, "original\n").unwrap();
        nix::unistd::chown(&file, Some(0.into()), Some(0.into())).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let o = f.run_with(
            &[
                "--proc",
                s(&t),
                "/bin/sh",
                "-c",
                "echo overwritten > /proc/self/fd/0; cat",
            ],
            |c| {
                c.stdin(fs::File::open(&file).unwrap());
            },
        );
        assert_eq!(stdout(&o), "original\n");
        assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
        assert_eq!(fs::read_to_string(&file).unwrap(), "original\n");
    });
}

/// Everything lstat and read say about a tree: what a `fileids` list
/// holds (names, modes, owners, contents, link targets) plus sizes and
/// modification times, so a mount point made in DIR changes it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let mut line = format!(
            "{:o} {} {} {} {}.{}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.size(),
            md.mtime(),
            md.mtime_nsec()
        );
        if md.file_type().is_symlink() {
            line.push_str(&format!(" -> {}", fs::read_link(&p).unwrap().display()));
        } else if md.is_file() {
            let mut data = Vec::new();
            fs::File::open(&p).unwrap().read_to_end(&mut data).unwrap();
            line.push_str(&format!(" {:?}", &data[..data.len().min(64)]));
            line.push_str(&format!(" len {}", data.len()));
        } else if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(p.strip_prefix(root).unwrap().to_path_buf(), line);
    }
    out
}

#[test]
fn dir_is_never_written() {
    each_caller(|f| {
        let t = f.hello("t");
        let host = f.path("host");
        fs::create_dir(&host).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o1777)).unwrap();
        f.own();
        let before = snapshot(&t);
        let bind = format!("{}:/mnt/x", s(&host));
        let o = f.run(&["--proc", "--dev", "--tmpfs", "/tmp", "--bind", &bind, s(&t)]);
        assert_eq!(stdout(&o), "Hello, world!\n", "{}", stderr(&o));
        assert_eq!(snapshot(&t), before, "DIR changed");
    });
}

#[test]
fn rw_keeps_writes_and_still_makes_no_mount_point() {
    each_caller(|f| {
        let t = f.busybox("t");
        f.own();
        let o = f.run(&["--rw", s(&t), "/bin/touch", "/kept"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(t.join("kept").exists());
        let o = f.run(&["--rw", "--tmpfs", "/nothere", s(&t), "/bin/true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("/nothere does not exist in DIR"),
            "{}",
            stderr(&o)
        );
        assert!(!t.join("nothere").exists());
    });
}

/// One more attack of our own: make a device node of the host's disk and
/// read it (CAP_MKNOD is in Docker's default set).
#[test]
fn a_device_node_of_the_hosts_disk_gives_nothing() {
    let Some(disk) = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2).map(String::from))
    else {
        testkit::skip("cannot find the root filesystem's device");
        return;
    };
    let (maj, min) = disk.split_once(':').unwrap();
    each_caller(|f| {
        let t = f.busybox("t");
        applets(&t, &["mknod"]);
        let o = f.run(&[
            "--tmpfs",
            "/scratch",
            s(&t),
            "/bin/sh",
            "-c",
            &format!(
                "mknod /scratch/disk b {maj} {min} && head -c 512 /scratch/disk | wc -c; \
                 mknod /disk b {maj} {min} && head -c 512 /disk | wc -c"
            ),
        ]);
        let out = stdout(&o);
        assert!(!out.contains("512"), "read the host's disk: {out}");
    });
}
