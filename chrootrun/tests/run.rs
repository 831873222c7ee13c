//! End-to-end tests of chrootrun, run as root and as an ordinary user
//! (created with useradd when the tests run as root), on real trees: a
//! hello-world container, busybox trees, and a static escape probe.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

mod common;
use common::*;

#[test]
fn hello_container_says_hello() {
    each_caller(|f| {
        let t = f.hello("hello");
        let o = f.run(&[s(&t)]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(stdout(&o), "Hello, world!\n");
        assert_eq!(stderr(&o), "");
    });
}

#[test]
fn exit_codes_pass_through() {
    each_caller(|f| {
        let t = f.busybox("t");
        fs::write(t.join("plain"), "echo x\n").unwrap();
        fs::write(t.join("script"), "#!/nonexistent/interp\necho x\n").unwrap();
        fs::set_permissions(t.join("script"), fs::Permissions::from_mode(0o755)).unwrap();
        let cases: &[(&[&str], i32, &str)] = &[
            (&["/bin/sh", "-c", "exit 0"], 0, ""),
            (&["/bin/sh", "-c", "exit 3"], 3, ""),
            (&["/bin/sh", "-c", "kill -9 $$"], 137, ""),
            (&["/bin"], 126, "is a directory"),
            (&["/plain"], 126, "no x permission"),
            (
                &["/script"],
                126,
                "#! interpreter /nonexistent/interp does not exist",
            ),
            (&["/nope"], 127, "not found inside"),
            (&["nope"], 127, "not found in PATH="),
            // The host's PATH directories are looked up inside: cargo is not there.
            (&["cargo"], 127, "not found in PATH="),
        ];
        for (cmd, code, msg) in cases {
            let mut args = vec![s(&t)];
            args.extend_from_slice(cmd);
            let o = f.run(&args);
            assert_eq!(o.status.code(), Some(*code), "{cmd:?}");
            let e = stderr(&o);
            assert!(e.contains(msg), "{cmd:?}: {e}");
            if *code >= 126 && *code != 137 {
                assert_eq!(e.lines().count(), 1, "{e}");
                assert!(e.starts_with("chrootrun: "), "{e}");
            }
        }
        // No /init at all: 127.
        let o = f.run(&[s(&t)]);
        assert_eq!(o.status.code(), Some(127));
        // An ELF whose loader is missing: 126, naming it.
        let h = f.hello("h2");
        fs::remove_dir_all(h.join("lib64")).ok();
        fs::remove_dir_all(h.join("lib")).ok();
        let o = f.run(&[s(&h)]);
        assert_eq!(o.status.code(), Some(126));
        assert!(stderr(&o).contains("ELF interpreter"), "{}", stderr(&o));
    });
}

#[test]
fn path_and_environment_are_the_containers() {
    each_caller(|f| {
        let t = f.busybox("t");
        fs::create_dir_all(t.join("opt/x")).unwrap();
        fs::write(t.join("opt/x/hi"), "#!/bin/sh\necho found\n").unwrap();
        fs::set_permissions(t.join("opt/x/hi"), fs::Permissions::from_mode(0o755)).unwrap();
        let o = f.run(&[
            "--clearenv",
            "--env",
            "PATH=/opt/x:/bin",
            "--env",
            "A=1",
            s(&t),
            "env",
        ]);
        assert_eq!(o.status.code(), Some(0));
        let mut lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
        lines.sort();
        assert_eq!(lines, ["A=1", "PATH=/opt/x:/bin"]);
        let o = f.run(&["--env", "PATH=/opt/x", s(&t), "hi"]);
        assert_eq!(stdout(&o), "found\n");
        let o = f.run(&["--cwd", "/opt/x", s(&t), "/bin/pwd"]);
        assert_eq!(stdout(&o), "/opt/x\n");
        let o = f.run(&["--hostname", "box", s(&t), "/bin/hostname"]);
        assert_eq!(stdout(&o), "box\n");
    });
}

#[test]
fn the_chroot_escape_finds_only_the_container() {
    each_caller(|f| {
        let t = f.busybox("t");
        f.cc("escape.c", &t.join("escape"), true);
        fs::write(f.path("HOST-MARKER"), "").unwrap();
        let mut want: Vec<String> = fs::read_dir(&t)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        want.push("escape-x".into());
        want.push("proc".into()); // made by --proc
        want.sort();
        let o = f.run(&["--proc", s(&t), "/escape"]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        let mut root: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("root: "))
            .collect();
        root.sort();
        assert_eq!(root, want);
        let mut proc1: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("proc1: "))
            .collect();
        proc1.sort();
        assert_eq!(proc1, want, "/proc/1/root is the container's root");
        assert!(!out.contains("HOST-MARKER"));
        // Its writes went to the overlay, not to DIR.
        assert!(!t.join("escape-x").exists() && !t.join("proc").exists());
        // The control: the same probe escapes `unshare -r chroot`.
        f.own();
        let ctl = f
            .command(Path::new("unshare"))
            .arg("-r")
            .arg("chroot")
            .arg(&t)
            .arg("/escape")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&ctl.stdout).contains("root: tmp"),
            "the probe did not escape a bare chroot: {}",
            String::from_utf8_lossy(&ctl.stdout)
        );
    });
}

#[test]
fn ro_root_refuses_writes_with_erofs() {
    each_caller(|f| {
        let t = f.busybox("t");
        let o = f.run(&[s(&t), "/bin/touch", "/written"]);
        assert_eq!(o.status.code(), Some(0), "the control write");
        let o = f.run(&[
            "--ro",
            "--tmpfs",
            "/scratch",
            s(&t),
            "/bin/sh",
            "-c",
            "touch /scratch/ok && touch /denied",
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("Read-only file system"),
            "{}",
            stderr(&o)
        );
        assert!(!t.join("denied").exists());
        // The mount point was made in the overlay, not in DIR.
        assert!(!t.join("scratch").exists() && !t.join("written").exists());
    });
}

#[test]
fn binds_and_ro_binds() {
    each_caller(|f| {
        let t = f.busybox("t");
        let host = f.path("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("f"), "data\n").unwrap();
        // A shared, world-writable build directory: a root caller's
        // container root is not host root, so a 0755 root-owned one would
        // be refused (attacks.rs).
        fs::set_permissions(&host, fs::Permissions::from_mode(0o1777)).unwrap();
        let bind = format!("{}:/mnt/data", s(&host));
        let o = f.run(&[
            "--bind",
            &bind,
            s(&t),
            "/bin/sh",
            "-c",
            "cat /mnt/data/f && echo new > /mnt/data/g",
        ]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(stdout(&o), "data\n");
        assert!(host.join("g").exists());
        let o = f.run(&["--ro-bind", &bind, s(&t), "/bin/touch", "/mnt/data/h"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("Read-only file system"),
            "{}",
            stderr(&o)
        );
    });
}

#[test]
fn proc_makes_the_program_pid_1_and_net_has_only_lo_up() {
    each_caller(|f| {
        let t = f.busybox("t");
        let o = f.run(&[
            "--proc",
            s(&t),
            "/bin/sh",
            "-c",
            "echo $$; readlink /proc/self; ls /proc/self/fd",
        ]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..2], ["1", "2"], "{out}");
        // No descriptor of the host's leaks in (a directory fd would be an escape).
        let o = f.run(&[
            "--proc",
            s(&t),
            "/bin/sh",
            "-c",
            "for d in /proc/self/fd/*; do [ -d \"$d\" ] && echo DIR $d; done; echo checked",
        ]);
        assert_eq!(stdout(&o), "checked\n");
        let o = f.run(&["--proc", "--net", s(&t), "/bin/cat", "/proc/net/dev"]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        let ifaces: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(ifaces, ["lo"], "{out}");
        let o = f.run(&[
            "--proc",
            "--net",
            "--dev",
            s(&t),
            "/bin/sh",
            "-c",
            "ifconfig; echo x > /dev/null; head -c 5 /dev/zero | wc -c",
        ]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        assert!(out.contains("UP LOOPBACK RUNNING"), "{out}");
        assert!(out.trim_end().ends_with('5'), "{out}");
    });
}

#[test]
fn the_caller_is_root_inside_and_root_keeps_its_ids() {
    each_caller(|f| {
        let t = f.busybox("t");
        if f.caller.user.is_none() {
            // Root's identity map: an owner other than root shows as itself.
            fs::write(t.join("foreign"), "").unwrap();
            nix::unistd::chown(&t.join("foreign"), Some(1234.into()), Some(4321.into())).unwrap();
            let o = f.run(&[s(&t), "/bin/ls", "-ln", "/foreign"]);
            let out = stdout(&o);
            let ids: Vec<&str> = out.split_whitespace().skip(2).take(2).collect();
            assert_eq!(ids, ["1234", "4321"], "{out}");
        }
        let o = f.run(&[s(&t), "/bin/sh", "-c", "id -u; ls -ln /bin/busybox"]);
        let out = stdout(&o);
        assert!(out.starts_with("0\n"), "{out}");
        // The tree is owned by the caller: root inside, in both cases.
        let owner = out
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("");
        assert_eq!(owner, "0", "{out}");
    });
}

#[test]
fn sigpipe_is_default_for_the_program() {
    each_caller(|f| {
        let t = f.busybox("t");
        let o = f.run(&[s(&t), "/bin/sh", "-c", "yes | head -n 1"]);
        assert_eq!(
            stdout(&o),
            "y\n",
            "status {:?}, stderr {}",
            o.status,
            stderr(&o)
        );
        assert_eq!(stderr(&o), "", "yes saw EPIPE instead of dying of SIGPIPE");
    });
}

#[test]
fn timeout_kills_everything_the_program_started() {
    each_caller(|f| {
        for (i, proc) in [false, true].into_iter().enumerate() {
            let t = f.busybox(&format!("t{i}"));
            let marker = format!("{}", 900_000 + std::process::id() % 10_000 * 10 + i as u32);
            let script =
                format!("sleep {marker} & setsid sleep {marker} & echo started; sleep {marker}");
            let mut args = vec!["--timeout", "1"];
            if proc {
                args.push("--proc");
            }
            args.extend([s(&t), "/bin/sh", "-c", &script]);
            let o = f.run(&args);
            assert_eq!(o.status.code(), Some(124));
            assert_eq!(stdout(&o), "started\n");
            assert!(stderr(&o).contains("timed out"));
            let left = Command::new("pgrep")
                .args(["-f", &format!("sleep {marker}")])
                .output()
                .unwrap();
            assert!(
                left.stdout.is_empty(),
                "left running: {}",
                String::from_utf8_lossy(&left.stdout)
            );
        }
    });
}

#[test]
fn bad_input_is_one_line_with_the_defined_code() {
    each_caller(|f| {
        let t = f.busybox("t");
        fs::write(f.path("file"), "").unwrap();
        symlink("../../../../../../tmp", t.join("esc")).unwrap();
        let missing = f.path("missing");
        let file = f.path("file");
        let cases: Vec<(Vec<&str>, i32, &str)> = vec![
            (vec![s(&missing)], 125, "No such file"),
            (vec![s(&file)], 125, "not a directory"),
            (
                vec!["--bind", "/nonexistent-src:/x", s(&t)],
                125,
                "/nonexistent-src",
            ),
            (vec!["--timeout", "abc", s(&t)], 125, "abc"),
            (vec!["--env", "=x", s(&t)], 125, "expected K=V"),
            (
                vec!["--tmpfs", "/esc/sub", s(&t), "/bin/true"],
                125,
                "leads above the container root",
            ),
        ];
        for (args, code, msg) in cases {
            let o = f.run(&args);
            assert_eq!(o.status.code(), Some(code), "{args:?}");
            let e = stderr(&o);
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains(msg), "{args:?}: {e}");
        }
        assert!(
            !Path::new("/tmp/sub").exists(),
            "the escaping mount point was created on the host"
        );
    });
}

#[test]
fn refused_user_namespaces_are_diagnosed() {
    // Inside `unshare -r`, user.max_user_namespaces is the nested namespace's
    // own limit: setting it to 0 there refuses chrootrun without touching the host.
    let f = Fixture::new(Caller {
        user: None,
        userns_ok: true,
    });
    let t = f.busybox("t");
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; exec {} {} /bin/true",
        s(&f.bin),
        s(&t)
    );
    let o = Command::new("unshare")
        .args(["-r", "sh", "-c", &script])
        .output()
        .unwrap();
    if o.status.code() == Some(99) {
        testkit::skip("cannot lower user.max_user_namespaces inside a user namespace here");
        return;
    }
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{e}");
    assert!(
        e.contains("user.max_user_namespaces=0") && e.contains("sysctl -w"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn signals_sent_to_chrootrun_reach_the_program() {
    each_caller(|f| {
        let t = f.busybox("t");
        f.own();
        for (proc, signals, code) in [(false, 1, 143), (true, 2, 137)] {
            let mut args = vec![];
            if proc {
                // As PID 1, sleep ignores SIGTERM: the second signal kills it.
                args.push("--proc");
            }
            args.extend([s(&t), "/bin/sleep", "100"]);
            // The ETXTBSY race of `Fixture::run` (another thread's fork
            // holding our copy of the binary open for writing) shows here
            // either as a spawn error or, through setpriv, as an early
            // exit 126: start again in both cases.
            let mut tries = 0;
            let mut child = loop {
                tries += 1;
                match f.command(&f.bin).args(&args).spawn() {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    r => {
                        let mut child = r.unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(400));
                        match child.try_wait().unwrap() {
                            Some(st) if st.code() == Some(126) && tries < 100 => continue,
                            _ => break child,
                        }
                    }
                }
            };
            for _ in 0..signals {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let st = child.wait().unwrap();
            assert_eq!(st.code(), Some(code), "--proc {proc}");
        }
    });
}

/// Opens `path` with `flags` as fd `at` in the child, without FD_CLOEXEC.
/// Only async-signal-safe calls: it runs between fork and exec.
fn open_at(path: &std::ffi::CStr, flags: libc::c_int, at: libc::c_int) -> std::io::Result<()> {
    // SAFETY: path is a NUL-terminated CStr that outlives the call, and
    // open(2) with no O_CREAT reads no mode argument.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: dup2(2) takes two numbers, no pointers: fd is the one just
    // opened and `at` a number the forked child has no Rust owner for (it
    // execs next), so no OwnedFd is invalidated. dup2 clears FD_CLOEXEC.
    if fd != at && unsafe { libc::dup2(fd, at) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if fd != at {
        // SAFETY: fd came from the open above, nothing else holds it, and
        // it is not `at`, so the copy just made stays open.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

#[test]
fn inherited_directory_fds_are_closed_and_plain_files_kept() {
    use std::os::unix::process::CommandExt;
    each_caller(|f| {
        let t = f.busybox("t");
        fs::write(f.path("HOST-MARKER"), "host secret\n").unwrap();
        fs::write(f.path("passed"), "passed on purpose\n").unwrap();
        let fixture = std::ffi::CString::new(s(f.dir.path())).unwrap();
        let passed = std::ffi::CString::new(s(&f.path("passed"))).unwrap();
        // As a careless caller would: the host's / on fd 7, a host
        // directory on 8, an O_PATH handle of it on 9, a directory on stdin,
        // and a plain file on 10 (kept, like make's jobserver pipe).
        let prepare = |c: &mut Command| {
            let (fixture, passed) = (fixture.clone(), passed.clone());
            // SAFETY: pre_exec runs between fork and exec, where only
            // async-signal-safe calls are allowed (signal-safety(7)): the
            // closure calls only open, dup2 and close, on CStrings made
            // before the fork, and allocates nothing.
            unsafe {
                c.pre_exec(move || {
                    open_at(c"/", libc::O_RDONLY | libc::O_DIRECTORY, 7)?;
                    open_at(&fixture, libc::O_RDONLY | libc::O_DIRECTORY, 8)?;
                    open_at(&fixture, libc::O_PATH, 9)?;
                    open_at(&fixture, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                    open_at(&passed, libc::O_RDONLY, 10)
                });
            }
        };
        // Without /proc the shell itself tells whether an fd is open.
        let probe = "for n in 0 7 8 9 10; do if (: <&$n); then echo open $n; fi; done; \
                     cat <&10; cat /proc/self/fd/8/HOST-MARKER; \
                     for d in /proc/self/fd/*; do [ -d \"$d\" ] && echo DIR $d; done; echo done";
        for how in [&["--proc"][..], &["--timeout", "30"], &[]] {
            let mut args = how.to_vec();
            args.extend([s(&t), "/bin/sh", "-c", probe]);
            let o = f.run_with(&args, prepare);
            assert_eq!(o.status.code(), Some(0), "{how:?}: {}", stderr(&o));
            // fd 0 is /dev/null now: open, but no directory.
            assert_eq!(
                stdout(&o),
                "open 0\nopen 10\npassed on purpose\ndone\n",
                "{how:?}"
            );
        }
        // The control: the same fds do reach a program run the plain way.
        let o = f
            .command(Path::new("/bin/busybox"))
            .args(["sh", "-c", probe])
            .tap(prepare)
            .output()
            .unwrap();
        let out = stdout(&o);
        assert!(out.contains("open 7\nopen 8\nopen 9\n"), "{out}");
        assert!(out.contains("host secret"), "{out}");
    });
}

trait Tap {
    fn tap(&mut self, f: impl Fn(&mut Self)) -> &mut Self;
}
impl Tap for Command {
    fn tap(&mut self, f: impl Fn(&mut Self)) -> &mut Self {
        f(self);
        self
    }
}
