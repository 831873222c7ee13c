//! `kvmrun` with an initrd larger than half of its memory for a small
//! one: the kernel unpacks the initramfs into a tmpfs capped at half of
//! RAM (kernel Documentation/filesystems/ramfs-rootfs-initramfs.rst), so
//! kvmrun must size the memory from the initrd itself (docs/DESIGN.md,
//! "Running in a VM"). One TCG boot
//! of a 100 MiB initrd (about 100 MB on disk for the test's duration).

use reliability_tests::{skip, tool};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

const BIG: u64 = 100 << 20;

#[test]
fn kvmrun_boots_an_initrd_larger_than_half_the_small_default() {
    if !fs::read_dir("/boot")
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false)
    {
        skip("no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    }
    if !Path::new("/bin/busybox").is_file() {
        skip("needs /bin/busybox (busybox-static)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    // Sparse on the host; mkinitrd writes its 100 MiB of zeros into the archive.
    fs::File::create(root.join("big"))
        .unwrap()
        .set_len(BIG)
        .unwrap();
    let initrd = tmp.path().join("big.initrd");
    let mut mk = tool("mkinitrd")
        .arg("-C")
        .arg(&root)
        .args(["--owner", "0:0"])
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&initrd).unwrap())
        .spawn()
        .unwrap();
    mk.stdin
        .take()
        .unwrap()
        .write_all(b".\n./big\n./bin\n./bin/busybox\n")
        .unwrap();
    assert!(mk.wait().unwrap().success(), "mkinitrd failed");
    let size = fs::metadata(&initrd).unwrap().len();
    let out = tool("kvmrun")
        .args(["--accel", "tcg", "--timeout", "120"])
        .arg(&initrd)
        .args(["--", "/bin/busybox", "stat", "-c", "%s", "/big"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "kvmrun, {size}-byte initrd: {:?}, stdout {stdout:?}, stderr {stderr:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(0), "stderr {stderr:?}");
    assert_eq!(stdout.trim(), BIG.to_string());
}
