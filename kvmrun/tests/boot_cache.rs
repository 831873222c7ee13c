//! Real boots through the vmlinux cache: a bzImage (`$KVMRUN_KERNEL`, else
//! the newest /boot/vmlinuz-*) boots as its extracted vmlinux, the entry is
//! reused by the next run, and a damaged entry is rebuilt and boots. Where
//! qemu, a kernel, busybox or cpio is missing the test says so and returns.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

fn initrd(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let out = dir.join("image.initrd");
    let mut cpio = Command::new("cpio");
    cpio.args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&root);
    let archive = testkit::run(cpio, b".\n./bin\n./bin/busybox\n");
    assert!(archive.status.success());
    fs::write(&out, archive.stdout).unwrap();
    out
}

fn run(kernel: &Path, xdg: &Path, initrd: &Path, qemu: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvmrun"));
    c.env("XDG_CACHE_HOME", xdg)
        .args(["--accel", "tcg", "--timeout", "120", "--kernel"])
        .arg(kernel);
    if let Some(q) = qemu {
        c.args(["--qemu", q]);
    }
    c.arg(initrd)
        .args(["--", "/bin/busybox", "echo", "booted"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn only_entry(cache: &Path) -> PathBuf {
    let v: Vec<PathBuf> = fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(v.len(), 1, "{v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn a_bzimage_boots_as_its_cached_vmlinux() {
    if let Some(why) = common::missing(&["cpio"]) {
        testkit::skip(why);
        return;
    }
    let Some(k) = common::kernel() else {
        testkit::skip(
            "no kernel: no $KVMRUN_KERNEL, no /boot/vmlinuz-* (apt-get install linux-image-amd64)",
        );
        return;
    };
    let head = fs::read(&k).unwrap();
    if head.get(0x202..0x206) != Some(b"HdrS") {
        testkit::skip(format!("{} is not a bzImage", k.display()));
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let xdg = d.path().join("xdg");
    let img = initrd(d.path());
    let out = run(&k, &xdg, &img, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"booted\n", "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("vmlinux"), "{err}");
    let cache = xdg.join("kvmrun");
    let entry = only_entry(&cache);
    let ino = fs::metadata(&entry).unwrap().ino();

    // The next run finds it (qemu replaced by /bin/true: the cache is used
    // before qemu starts).
    let _ = run(&k, &xdg, &img, Some("/bin/true"));
    assert_eq!(only_entry(&cache), entry);
    assert_eq!(fs::metadata(&entry).unwrap().ino(), ino, "extracted again");

    // Damaged: cut to its first 4 KiB. It is rebuilt, and boots.
    let f = fs::OpenOptions::new().write(true).open(&entry).unwrap();
    f.set_len(4096).unwrap();
    drop(f);
    let out = run(&k, &xdg, &img, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"booted\n", "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    let rebuilt = only_entry(&cache);
    assert_eq!(rebuilt, entry);
    assert!(fs::metadata(&rebuilt).unwrap().len() > 4096);
}
