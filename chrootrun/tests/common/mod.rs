//! What every chrootrun test file shares: the callers (root and an
//! ordinary user made with useradd), a fixture directory they can both
//! reach, trees to run, and the runner.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const USER: &str = "chrootrun-test";

#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// None: the current process (root or not); Some: the test user via setpriv.
    pub user: Option<(u32, u32)>,
    pub userns_ok: bool,
}

pub fn id_of(flag: &str) -> Option<u32> {
    let o = Command::new("id").args([flag, USER]).output().ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

pub fn callers() -> Vec<Caller> {
    static CALLERS: OnceLock<Vec<Caller>> = OnceLock::new();
    CALLERS
        .get_or_init(|| {
            let me = Caller {
                user: None,
                userns_ok: true,
            };
            if !testkit::is_root() {
                eprintln!("not root: testing as the current user only");
                let ok = Command::new("unshare")
                    .args(["-r", "true"])
                    .status()
                    .is_ok_and(|s| s.success());
                return vec![Caller {
                    userns_ok: ok,
                    ..me
                }];
            }
            if id_of("-u").is_none() {
                let _ = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        USER,
                    ])
                    .status();
            }
            let (Some(uid), Some(gid)) = (id_of("-u"), id_of("-g")) else {
                eprintln!("cannot create user {USER}: testing as root only");
                return vec![me];
            };
            let ok = Command::new("setpriv")
                .args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                    "unshare",
                    "-r",
                    "true",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("user namespaces are refused to {USER}: its tests assert the diagnostic");
            }
            vec![
                me,
                Caller {
                    user: Some((uid, gid)),
                    userns_ok: ok,
                },
            ]
        })
        .clone()
}

/// A 0755 directory under /tmp that the test user can reach, holding a copy
/// of the binary and the trees, owned by the caller.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub caller: Caller,
    pub bin: PathBuf,
}

impl Fixture {
    pub fn new(caller: Caller) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("chrootrun-test")
            .tempdir_in("/tmp")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("chrootrun");
        fs::copy(env!("CARGO_BIN_EXE_chrootrun"), &bin).unwrap();
        Fixture { dir, caller, bin }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A tree with busybox and applet links.
    pub fn busybox(&self, name: &str) -> PathBuf {
        let t = self.path(name);
        fs::create_dir_all(t.join("bin")).unwrap();
        fs::copy("/bin/busybox", t.join("bin/busybox")).unwrap();
        for a in [
            "sh", "echo", "cat", "ls", "touch", "sleep", "setsid", "hostname", "env", "pwd",
            "ifconfig", "yes", "head", "readlink", "wc",
        ] {
            symlink("busybox", t.join("bin").join(a)).unwrap();
        }
        t
    }

    pub fn cc(&self, src: &str, out: &Path, stat: bool) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(src);
        let mut c = Command::new("cc");
        if stat {
            c.arg("-static");
        }
        let st = c.arg("-O1").arg("-o").arg(out).arg(&src).status().unwrap();
        assert!(st.success(), "cc {}", src.display());
    }

    /// The hello container: bin/hello, its libraries (from ldd), /init -> bin/hello.
    pub fn hello(&self, name: &str) -> PathBuf {
        let t = self.path(name);
        fs::create_dir_all(t.join("bin")).unwrap();
        self.cc("hello.c", &t.join("bin/hello"), false);
        let ldd = Command::new("ldd")
            .arg(t.join("bin/hello"))
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let lib = line.split_whitespace().find(|w| w.starts_with('/'));
            if let Some(lib) = lib {
                let dst = t.join(lib.trim_start_matches('/'));
                fs::create_dir_all(dst.parent().unwrap()).unwrap();
                fs::copy(lib, &dst).unwrap();
            }
        }
        symlink("bin/hello", t.join("init")).unwrap();
        t
    }

    /// Gives the trees to the caller (an unprivileged root can write only its own files).
    pub fn own(&self) {
        if let Some((uid, gid)) = self.caller.user {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    pub fn command(&self, prog: &Path) -> Command {
        match self.caller.user {
            None => Command::new(prog),
            Some((uid, gid)) => {
                // By its path: a test may change the PATH chrootrun sees.
                let setpriv = if Path::new("/usr/bin/setpriv").exists() {
                    "/usr/bin/setpriv"
                } else {
                    "setpriv"
                };
                let mut c = Command::new(setpriv);
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                    "--",
                ]);
                c.arg(prog);
                c
            }
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, |_| {})
    }

    /// `run`, with `prepare` applied to the command first.
    pub fn run_with(&self, args: &[&str], prepare: impl Fn(&mut Command)) -> Output {
        self.own();
        // Another test thread may fork while our copy of the binary is still
        // open for writing (it then holds the fd until its exec): ETXTBSY is
        // that race, not a failure; try again.
        let mut tries = 0;
        let out = loop {
            let mut cmd = self.command(&self.bin);
            prepare(&mut cmd);
            match cmd.args(args).output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                // setpriv reports the same race as its own exec failure.
                Ok(o)
                    if o.status.code() == Some(126)
                        && String::from_utf8_lossy(&o.stderr).contains("Text file busy")
                        && tries < 100 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.unwrap(),
            }
        };
        eprintln!(
            "{:?} {args:?} -> {:?}\nstdout: {}stderr: {}",
            self.caller.user,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `check` for every caller; where user namespaces are refused,
/// asserts the diagnostic instead.
pub fn each_caller(check: impl Fn(&Fixture)) {
    for caller in callers() {
        let f = Fixture::new(caller);
        if !caller.userns_ok {
            let t = f.busybox("t");
            let o = f.run(&[t.to_str().unwrap(), "/bin/true"]);
            assert_eq!(o.status.code(), Some(125));
            assert!(stderr(&o).contains("user namespace"), "{}", stderr(&o));
            continue;
        }
        check(&f);
        // Nothing of ours stays mounted on the host.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(f.dir.path().to_str().unwrap()),
            "left mounted: {mounts}"
        );
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
