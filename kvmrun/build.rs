//! Builds the guest init (`guest/init.rs`) as a static executable that
//! `kvmrun` embeds with `include_bytes!` and appends to every initrd.
//!
//! Plain `rustc` on one file, no crates, so the workspace build needs no
//! extra rustup target: `-C target-feature=+crt-static` on the gnu target
//! gives a static-pie binary that runs in an image without a libc
//! (checked on x86-64 Debian 12: it links static-pie and runs in a bare
//! initrd). `panic=abort` because an unwinding PID 1 has no one to
//! unwind to.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "guest/init.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let out = out_dir.join("kvmrun-init");
    let status = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "kvmrun_init",
            "--crate-type",
            "bin",
            "--target",
            &target,
            "-C",
            "opt-level=2",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-C",
            "debuginfo=0",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("running {rustc:?} for the guest init: {e}"));
    assert!(status.success(), "building the guest init ({src}) failed");
}
