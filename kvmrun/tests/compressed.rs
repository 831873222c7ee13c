//! Real boots of initrds that `mkinitrd --compress` made, one per method
//! (gzip, zstd, lz4), on `$KVMRUN_KERNEL` where it is set (scripts/test.sh
//! sets it to the cookbook's kernel, whose scripts/kernel.config turns the
//! three on), else on the Debian kernel from /boot (it has
//! `CONFIG_RD_GZIP`, `CONFIG_RD_ZSTD` and `CONFIG_RD_LZ4`): the kernel
//! unpacks the compressed image, then the guest archive kvmrun appends
//! uncompressed after it, and the program's stdout comes back byte-exact.
//! The image holds a 9 MiB file, more than one lz4 block (8 MiB) and many
//! gzip blocks, which the guest hashes. Where qemu, the kernel or busybox
//! is missing the test says so and returns.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

mod common;

/// 9 MiB that compress about 3:1: text with noise in it.
fn data() -> Vec<u8> {
    let mut out = Vec::with_capacity(9 << 20);
    let mut x: u64 = 7;
    while out.len() < 9 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        if r.is_multiple_of(4) {
            out.extend_from_slice(&x.to_le_bytes()[..3]);
        } else {
            out.extend_from_slice([&b"/usr/lib/"[..], b"share ", b"\n", b"doc"][r % 4]);
        }
    }
    out.truncate(9 << 20);
    out
}

/// The tree, and `mkinitrd --compress METHOD` of it.
fn initrd(dir: &Path, method: &str, data: &[u8]) -> PathBuf {
    let root = dir.join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    fs::write(root.join("data"), data).unwrap();
    let mut cmd = testkit::bins::tool("mkinitrd");
    cmd.arg("-C")
        .arg(&root)
        .args(["--owner", "0:0", "--compress", method]);
    let out = testkit::run(cmd, b".\n./bin\n./bin/busybox\n./data\n");
    assert!(
        out.status.success(),
        "mkinitrd --compress {method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("image.{method}"));
    fs::write(&path, &out.stdout).unwrap();
    path
}

fn boots(method: &str, magic: &[u8]) {
    if let Some(why) = common::missing(&[]) {
        testkit::skip(why);
        return;
    }
    let Some(kernel) = common::kernel() else {
        testkit::skip("no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let data = data();
    let img = initrd(d.path(), method, &data);
    assert!(fs::read(&img).unwrap().starts_with(magic), "{method} magic");
    let out = Command::new(env!("CARGO_BIN_EXE_kvmrun"))
        .env("XDG_CACHE_HOME", d.path().join("xdg"))
        .args(["--accel", "tcg", "--timeout", "150", "--kernel"])
        .arg(&kernel)
        .arg(&img)
        .args([
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox sha256sum /data && /bin/busybox printf '\\000\\377\\r\\n'",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut want = format!("{hex}  /data\n").into_bytes();
    want.extend_from_slice(b"\0\xff\r\n");
    assert_eq!(
        out.stdout,
        want,
        "{method}: stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn boots_a_gzip_initrd() {
    boots("gzip", &[0x1f, 0x8b]);
}

#[test]
fn boots_a_zstd_initrd() {
    boots("zstd", &[0x28, 0xb5, 0x2f, 0xfd]);
}

#[test]
fn boots_an_lz4_initrd() {
    boots("lz4", &[0x02, 0x21, 0x4c, 0x18]);
}
