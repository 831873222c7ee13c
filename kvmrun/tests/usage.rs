//! The runners' one rule for CMD: everything after INITRD that is not one
//! of kvmrun's options is CMD, and a `--` before it is optional, as
//! chrootrun takes it (`kvmrun IMG /init x` once failed with "unexpected
//! argument '/init'"). These runs stop at the kernel, before any VM: the
//! point is what the command line accepts.

use std::process::Command;

fn kvmrun() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvmrun"));
    c.args(["--kernel", "/nonexistent/vmlinuz"]);
    c
}

#[test]
fn cmd_with_and_without_double_dash() {
    for cmd in [
        &["img.initrd", "/init", "x"][..],
        &["img.initrd", "--", "/init", "x"],
        &["img.initrd", "-v", "/bin/sh", "-c", "exit 7"],
        &["--timeout", "30", "img.initrd", "--", "/bin/sh", "-c", "--"],
    ] {
        let o = kvmrun().args(cmd).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{cmd:?}: {err}");
        assert!(
            err.starts_with("kvmrun: kernel \"/nonexistent/vmlinuz\": ")
                && err.lines().count() == 1,
            "{cmd:?}: {err}"
        );
    }
}

#[test]
fn a_bad_timeout_is_a_usage_error_naming_it() {
    let o = kvmrun()
        .args(["--timeout", "-1", "img.initrd"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.starts_with("kvmrun: --timeout wants a number of seconds") && err.lines().count() == 1,
        "{err}"
    );
}
