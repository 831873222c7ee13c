//! Finding the workspace's binaries from a test: they are built next to
//! the test executable (`target/PROFILE/deps/NAME-HASH`), whatever
//! `CARGO_TARGET_DIR` is. `scripts/test.sh` builds every binary first; a
//! bare `cargo test -p CRATE` builds a missing one here, once.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Which package builds each binary the tests run (the binary's name when
/// it is not listed).
const PACKAGES: &[(&str, &str)] = &[("minredo", "pipeline-tests")];

/// Serialises the fallback `cargo build`s of parallel tests.
static BUILD: Mutex<()> = Mutex::new(());

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// `target/PROFILE` of the running test executable.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("own executable path: {e}"));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{}: not under target/PROFILE/deps", exe.display()))
}

/// The target directory (the parent of `target/PROFILE`).
pub fn target_dir() -> PathBuf {
    let dir = profile_dir();
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

/// The path of binary `name` of this workspace, built with the test's own
/// profile if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(name);
    if path.is_file() {
        return path;
    }
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if path.is_file() {
        return path;
    }
    let package = PACKAGES
        .iter()
        .find(|(b, _)| *b == name)
        .map(|(_, p)| *p)
        .unwrap_or(name);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--bins", "-p", package])
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
    assert!(
        status.success() && path.is_file(),
        "{name} is missing from {} and `cargo build --bins -p {package}` did not make it ({status})",
        dir.display()
    );
    path
}

/// A `Command` for binary `name` of this workspace.
pub fn tool(name: &str) -> Command {
    Command::new(bin(name))
}

/// Whether `prog` is on PATH, or in /usr/sbin or /sbin (where Debian keeps
/// debootstrap, useradd and chroot, off an ordinary user's PATH).
pub fn have(prog: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(prog).is_file())
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> OsString {
    let mut p = dir.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("PATH") {
        p.push(":");
        p.push(old);
    }
    p
}
