//! What kvmrun's VM tests share: the kernel they boot and why they cannot
//! run here, if they cannot (each test then skips, saying so).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `$KVMRUN_KERNEL` where set (scripts/test.sh sets it to the cookbook's
/// kernel), else the newest /boot/vmlinuz-*.
pub fn kernel() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KVMRUN_KERNEL").filter(|k| !k.is_empty()) {
        return Some(k.into());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("/vmlinuz-"))
        .collect();
    v.sort_by(|a, b| {
        kvmrun::kernel::version_cmp(
            a.as_os_str().as_encoded_bytes(),
            b.as_os_str().as_encoded_bytes(),
        )
    });
    v.pop()
}

/// Why a VM test cannot run here: qemu, one of `progs` (each answers
/// `--version`), a kernel or the static busybox the images hold missing.
pub fn missing(progs: &[&str]) -> Option<String> {
    let qemu = format!("qemu-system-{}", std::env::consts::ARCH);
    for prog in std::iter::once(qemu.as_str()).chain(progs.iter().copied()) {
        if Command::new(prog).arg("--version").output().is_err() {
            return Some(format!("{prog} is not installed"));
        }
    }
    if kernel().is_none() {
        return Some("no /boot/vmlinuz-* (apt-get install linux-image-amd64)".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no /bin/busybox (apt-get install busybox-static)".into());
    }
    None
}
