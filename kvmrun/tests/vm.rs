//! End-to-end tests: real qemu, real kernel, since only a real boot shows
//! that the guest init, the serial channels and the exit code work.
//!
//! One image serves every boot: a C program compiled here with `cc` plus
//! the libraries `ldd` names (no busybox for the hello case), and the
//! static busybox for the shell case. The initrd is made with GNU
//! `cpio -o -H newc`, as the seed does. A TCG boot takes about 5 s here, so
//! the boots are few and each checks what it can. Where qemu, a kernel, cc
//! or cpio is missing the test says so and returns.

use std::fs;
use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;

mod common;

const PROBE_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "bytes") == 0) {
        unsigned char b[256];
        for (int i = 0; i < 256; i++) b[i] = (unsigned char)i;
        fwrite(b, 1, 256, stdout);
        fwrite("\r\n\n", 1, 3, stdout);
        return 3;
    }
    if (argc > 1 && strcmp(argv[1], "sleep") == 0) {
        for (;;) pause();
    }
    puts("Hello, world!");
    return 0;
}
"#;

struct Image {
    _dir: tempfile::TempDir,
    initrd: PathBuf,
}

/// The image the VM tests boot, or None (after a visible skip of the
/// calling test) when they cannot run here.
fn image() -> Option<&'static Image> {
    static IMAGE: OnceLock<Result<Image, String>> = OnceLock::new();
    match IMAGE.get_or_init(|| match common::missing(&["cc", "cpio", "ldd"]) {
        Some(why) => Err(why),
        None => Ok(build_image()),
    }) {
        Ok(image) => Some(image),
        Err(why) => {
            testkit::skip(format!("the VM tests: {why}"));
            None
        }
    }
}

fn build_image() -> Image {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    let src = dir.path().join("probe.c");
    fs::write(&src, PROBE_C).unwrap();
    let exe = root.join("bin/hello");
    let st = StdCommand::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "cc failed");
    // The libraries, as the seed's libs.fs.do finds them: every absolute
    // path in ldd's output (`libc.so.6 => /lib/... (0x...)`, and the
    // loader alone on its line).
    let out = StdCommand::new("ldd").arg(&exe).output().unwrap();
    for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Some(rel) = word.strip_prefix('/') {
            let dest = root.join(rel);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(word, &dest).unwrap();
        }
    }
    std::os::unix::fs::symlink("bin/hello", root.join("init")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();

    let initrd = dir.path().join("image.initrd");
    let list = StdCommand::new("find")
        .arg(".")
        .current_dir(&root)
        .output()
        .unwrap();
    let mut cpio = StdCommand::new("cpio");
    cpio.args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&root);
    let archive = testkit::run(cpio, &list.stdout);
    assert!(archive.status.success(), "cpio failed");
    fs::write(&initrd, archive.stdout).unwrap();
    Image { _dir: dir, initrd }
}

/// The VMs boot `$KVMRUN_KERNEL` where it is set (CI runs these tests
/// once on the Debian kernel and once on the cookbook's), else kvmrun's
/// own choice from /boot. Extracted vmlinux files go to a cache of this
/// test process's own, not the user's.
fn kvmrun() -> Command {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    let mut c = Command::cargo_bin("kvmrun").unwrap();
    c.env("XDG_CACHE_HOME", cache.path())
        .arg("--accel")
        .arg("tcg");
    c
}

#[test]
fn hello_container_from_stdin() {
    let Some(img) = image() else { return };
    // The image's own /init, read from stdin.
    let out = kvmrun()
        .arg("-")
        .pipe_stdin(&img.initrd)
        .unwrap()
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, world!\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn binary_output_is_intact_and_exit_code_passes_through() {
    let Some(img) = image() else { return };
    let out = kvmrun()
        .arg(&img.initrd)
        .args(["--", "hello", "bytes"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let mut want: Vec<u8> = (0..=255u8).collect();
    want.extend_from_slice(b"\r\n\n");
    assert_eq!(
        out.stdout,
        want,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn busybox_shell_exit_code() {
    let Some(img) = image() else { return };
    let out = kvmrun()
        .arg(&img.initrd)
        .args([
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "echo to-stderr >&2; exit 7",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(out.stdout.is_empty());
    // The program's stderr is on the console, which is our stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr\n"));
}

#[test]
fn signal_and_missing_command() {
    let Some(img) = image() else { return };
    let out = kvmrun()
        .arg(&img.initrd)
        .args(["--", "/bin/busybox", "sh", "-c", "kill -9 $$"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 9));
    let out = kvmrun()
        .arg(&img.initrd)
        .args(["--", "/bin/no-such-program"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kvmrun: /bin/no-such-program: command not found"),
        "{err}"
    );
}

fn qemu_with(marker: &str) -> String {
    let out = StdCommand::new("pgrep")
        .args(["-af", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("qemu-system"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn timeout_kills_the_vm() {
    let Some(img) = image() else { return };
    let marker = format!("kvmrun.test=timeout{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = kvmrun()
        .env("TMPDIR", tmp.path())
        .args(["--timeout", "5", "--append", &marker])
        .arg(&img.initrd)
        .args(["--", "hello", "sleep"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(124),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(60),
        "{took:?}"
    );
    assert_eq!(qemu_with(&marker), "", "qemu outlived kvmrun");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary files left"
    );
}

#[test]
fn sigterm_stops_the_vm_and_cleans_up() {
    let Some(img) = image() else { return };
    let marker = format!("kvmrun.test=sigterm{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("kvmrun"))
        .env("TMPDIR", tmp.path())
        .args(["--accel", "tcg", "--append", &marker])
        .arg(&img.initrd)
        .args(["--", "hello", "sleep"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for qemu to be running, then ask kvmrun to stop.
    let start = Instant::now();
    while qemu_with(&marker).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!qemu_with(&marker).is_empty(), "qemu never started");
    let st = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    assert_eq!(qemu_with(&marker), "", "qemu outlived kvmrun");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary files left"
    );
}

#[test]
fn missing_kernel_is_a_clear_error() {
    // No boot: the kernel is checked before qemu starts.
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("x.initrd");
    fs::write(&initrd, b"").unwrap();
    let out = kvmrun()
        .args(["--kernel", "/nonexistent/vmlinuz"])
        .arg(&initrd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kvmrun: kernel \"/nonexistent/vmlinuz\": No such file"),
        "{err}"
    );
    let out = kvmrun()
        .env("KVMRUN_KERNEL", "/nonexistent/k")
        .arg(&initrd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("$KVMRUN_KERNEL"));
}

#[test]
fn usage_errors_exit_125() {
    let out = kvmrun().args(["--mem", "lots", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
