//! What every pipeline test needs beyond `testkit`: the workspace's
//! binaries in one directory for PATH (built with the test's own profile
//! if missing), a fresh copy of `scripts/`, and a private Docker engine
//! (Debian's dockerd runs on hybrid-cgroup hosts only in a mount
//! namespace of its own with cgroup2 on /sys/fs/cgroup).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every binary the cookbook calls, plus the test driver.
pub const BINARIES: &[&str] = &[
    "fileids",
    "layerdiff",
    "elfdeps",
    "mkinitrd",
    "kvmrun",
    "chrootrun",
    "dockpack",
    "minredo",
];

pub use testkit::{is_root, path_with, skip, workspace_root};

/// The directory holding every binary in BINARIES, running
/// `cargo build --bins` for the workspace (same profile, same target dir)
/// when one is missing.
pub fn binaries() -> Result<PathBuf, String> {
    let dir = testkit::profile_dir();
    let missing = |d: &Path| BINARIES.iter().any(|b| !d.join(b).is_file());
    if missing(&dir) {
        let target = dir
            .parent()
            .ok_or_else(|| format!("{}: no target dir", dir.display()))?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--workspace", "--bins"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target);
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --bins failed: {status}"));
        }
        if let Some(b) = BINARIES.iter().find(|b| !dir.join(b).is_file()) {
            return Err(format!("{} was not built into {}", b, dir.display()));
        }
    }
    Ok(dir)
}

/// Copies the cookbook (the files of `scripts/`, not `bench/` nor build
/// products) into `dest`.
pub fn copy_scripts(dest: &Path) -> Result<(), String> {
    let src = workspace_root().join("scripts");
    let entries = fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", src.display()))?;
        let name = entry.file_name();
        let n = name.to_string_lossy();
        let source = n.ends_with(".do")
            || n.ends_with(".sh")
            || n.ends_with(".c")
            || n.ends_with(".options")
            || n.ends_with(".diffbase")
            || n.ends_with(".layers")
            || n == "Makefile";
        // test.sh, skips.sh and demo.sh drive the whole workspace, not
        // the cookbook.
        let source = source && n != "test.sh" && n != "skips.sh" && n != "demo.sh";
        if source && entry.path().is_file() {
            fs::copy(entry.path(), dest.join(&name))
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A Docker engine of our own, stopped (and its mounts gone with its
/// private mount namespace) when dropped.
pub struct Dockerd {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts `dockerd` in a private mount namespace with cgroup2 on
    /// /sys/fs/cgroup and the vfs storage driver, and waits (up to 60 s) until `docker info` answers.
    pub fn start() -> Result<Dockerd, String> {
        let dir = tempfile::Builder::new()
            .prefix("dockerd")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let d = dir.path();
        let sock = d.join("docker.sock");
        let script = format!(
            "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && \
             exec dockerd --storage-driver=vfs --iptables=false --ip-forward=false \
             --bridge=none --data-root {0}/data --exec-root {0}/exec -H unix://{1} \
             --pidfile {0}/docker.pid",
            d.display(),
            sock.display()
        );
        let log = fs::File::create(d.join("dockerd.log")).map_err(|e| format!("log: {e}"))?;
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("unshare dockerd: {e}"))?;
        let host = format!("unix://{}", sock.display());
        let mut engine = Dockerd {
            child,
            host,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            let ok = Command::new("docker")
                .arg("info")
                .env("DOCKER_HOST", &engine.host)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(engine);
            }
            if let Ok(Some(status)) = engine.child.try_wait() {
                let log =
                    fs::read_to_string(engine._dir.path().join("dockerd.log")).unwrap_or_default();
                return Err(format!("dockerd exited ({status}): {log}"));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err("dockerd did not answer within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // dockerd is the exec'd shell: SIGTERM lets it stop its containerd.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
