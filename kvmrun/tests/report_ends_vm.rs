//! kvmrun ends the VM as soon as the guest init's report has arrived, not
//! when the guest powers off: booted with `acpi=off`, a PC guest's
//! power-off only halts the CPU and qemu never exits by itself (a kernel
//! without ACPI, as the cookbook's, is the same), yet kvmrun must still
//! return the program's exit code, its stdout byte for byte and its
//! stderr (on the console) in full, well before `--timeout`.
//!
//! Real qemu and a real kernel, as in tests/vm.rs; the image is the static
//! busybox alone, packed with GNU cpio. Where qemu, a kernel, busybox or
//! cpio is missing the test says so and returns.

use std::fs;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use assert_cmd::Command;

mod common;

#[test]
fn the_vm_ends_when_the_report_is_in_even_if_the_guest_cannot_power_off() {
    if let Some(why) = common::missing(&["cpio"]) {
        testkit::skip(format!("the VM test: {why}"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let mut cpio = StdCommand::new("cpio");
    cpio.args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&root);
    let archive = testkit::run(cpio, b"bin\nbin/busybox\n");
    assert!(archive.status.success(), "cpio failed");
    let initrd = dir.path().join("busybox.initrd");
    fs::write(&initrd, archive.stdout).unwrap();

    // Output written just before the program exits, on both channels:
    // it must all be out of the VM before kvmrun ends it.
    let script = "i=0; while [ $i -lt 200 ]; do echo \"out $i\"; i=$((i+1)); done; \
                  echo err-last >&2; printf 'no newline'; exit 5";
    let timeout = 100;
    let start = Instant::now();
    let out = Command::cargo_bin("kvmrun")
        .unwrap()
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .args(["--accel", "tcg", "--append", "acpi=off"])
        .args(["--timeout", &timeout.to_string()])
        .arg(&initrd)
        .args(["--", "/bin/busybox", "sh", "-c", script])
        .timeout(Duration::from_secs(timeout + 20))
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "after {took:?} (124: kvmrun waited for a power-off that never came); stderr: {stderr}"
    );
    let mut want = String::new();
    for i in 0..200 {
        want.push_str(&format!("out {i}\n"));
    }
    want.push_str("no newline");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(stderr.contains("err-last\n"), "stderr: {stderr}");
    assert!(took < Duration::from_secs(timeout), "{took:?}");
}
