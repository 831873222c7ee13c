//! A newcomer's first run of the cookbook, in a copy of `scripts/` with
//! none of the project's tools on PATH: `make` and `minredo` stop once,
//! with one message that says how to build the tools and put them on
//! PATH (make used to recurse without end, redo to exit 0 having built
//! nothing); with the tools only in `../target/release` they find them by
//! themselves; `all` ends with a summary, and STRICT=1 turns a skip into
//! an error. Also: system tools in /usr/sbin are found without it on
//! PATH, and docker.sh passes ENGINE_FLAGS as words. Every copy lives
//! under a directory whose name holds a space.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pipeline_tests::support;

/// The tools the cookbook runs (minredo aside, which drives it).
const TOOLS: &[&str] = &[
    "fileids",
    "layerdiff",
    "elfdeps",
    "mkinitrd",
    "dockpack",
    "chrootrun",
    "kvmrun",
];

/// The PATH of a fresh ordinary account (no /usr/sbin, no /sbin, no
/// project tool) plus `extra`.
fn bare_path(extra: &Path) -> String {
    format!("{}:{}", extra.display(), testkit::user::USER_PATH)
}

struct Copy {
    _top: tempfile::TempDir,
    /// top/scripts: the cookbook.
    scripts: PathBuf,
    /// A directory holding only minredo.
    redo_bin: PathBuf,
}

/// A copy of scripts/ at TOP/scripts; with `release`, the tools in
/// TOP/target/release (links to this build's binaries) as a
/// `cargo build --release` would leave them.
fn copy(release: bool) -> Copy {
    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    // A space in the path, as in "~/my projects/": every script must
    // quote the directories path.sh and need.sh derive from it.
    let top = tempfile::Builder::new()
        .prefix("new comer")
        .tempdir()
        .unwrap_or_else(|e| panic!("{e}"));
    let scripts = top.path().join("scripts");
    fs::create_dir(&scripts).unwrap_or_else(|e| panic!("{e}"));
    support::copy_scripts(&scripts).unwrap_or_else(|e| panic!("{e}"));
    let redo_bin = top.path().join("redo-bin");
    fs::create_dir(&redo_bin).unwrap_or_else(|e| panic!("{e}"));
    symlink(bins.join("minredo"), redo_bin.join("minredo")).unwrap_or_else(|e| panic!("{e}"));
    if release {
        let rel = top.path().join("target/release");
        fs::create_dir_all(&rel).unwrap_or_else(|e| panic!("{e}"));
        for t in TOOLS {
            symlink(bins.join(t), rel.join(t)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    Copy {
        _top: top,
        scripts,
        redo_bin,
    }
}

/// Runs `prog args` in the copy with the bare PATH, at most `secs`
/// seconds (`timeout`: an endless make recursion must end the test, not
/// hang it), nothing of an outer build in the environment.
fn run(c: &Copy, secs: u32, prog: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string())
        .arg(prog)
        .args(args)
        .current_dir(&c.scripts)
        .env("PATH", bare_path(&c.redo_bin));
    for k in [
        "MINREDO_RUN",
        "MINREDO_DB",
        "MINREDO_JOBSERVER",
        "MAKEFLAGS",
        "MAKELEVEL",
        "MFLAGS",
        "STRICT",
        "ENGINE",
        "ENGINE_FLAGS",
        "COOKBOOK_ALL",
        "KVMRUN_KERNEL",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output()
        .unwrap_or_else(|e| panic!("{prog}: cannot run: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one message need.sh gives for missing project tools, exactly once.
fn assert_stops_with_the_message(what: &str, out: &Output) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "{what}: want a failure (not a timeout), got {:?}\n{err}",
        out.status
    );
    assert_eq!(
        err.matches("cargo build --release").count(),
        1,
        "{what}: want the build command once:\n{err}"
    );
    assert_eq!(
        err.matches("export PATH=").count(),
        1,
        "{what}: want how to put the tools on PATH once:\n{err}"
    );
    assert!(
        TOOLS.iter().any(|t| err.contains(&format!("missing: {t}"))),
        "{what}: names no tool:\n{err}"
    );
    assert!(!err.contains("make["), "{what}: make recursed:\n{err}");
}

fn no_tool_on_bare_path(c: &Copy) {
    for t in TOOLS {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .env("PATH", bare_path(&c.redo_bin))
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(
            !found.status.success(),
            "{t} is on {}: this test needs a PATH without the tools",
            bare_path(&c.redo_bin)
        );
    }
}

#[test]
fn without_the_tools_make_and_minredo_stop_once_with_one_message() {
    let c = copy(false);
    no_tool_on_bare_path(&c);
    let out = run(&c, 120, "make", &[], &[]);
    assert_stops_with_the_message("make", &out);
    let out = run(&c, 120, "minredo", &["all"], &[]);
    assert_stops_with_the_message("minredo all", &out);
    // One product asked for directly stops the same way.
    let out = run(&c, 120, "minredo", &["libs.runlocal"], &[]);
    assert_stops_with_the_message("minredo libs.runlocal", &out);
    let out = run(&c, 120, "make", &["simple.list"], &[]);
    assert_stops_with_the_message("make simple.list", &out);
}

#[test]
fn with_the_tools_in_target_release_both_find_them() {
    if !testkit::have("cc") {
        testkit::skip("no C compiler for the cookbook's hello (apt-get install gcc libc6-dev)");
        return;
    }
    for driver in ["minredo", "make"] {
        let c = copy(true);
        no_tool_on_bare_path(&c);
        let (prog, args): (&str, &[&str]) = if driver == "make" {
            ("make", &[])
        } else {
            ("minredo", &["all"])
        };
        // Everything but what needs root or downloads: the point is the
        // PATH, and the summary.
        let asked = [
            ("NO_DEBIAN", "1"),
            ("NO_KVM", "1"),
            ("NO_DOCKER", "1"),
            ("NO_CHROOT", "1"),
            ("STRICT", "1"),
        ];
        let out = run(&c, 300, prog, args, &asked);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{driver}: {:?}\n{err}", out.status);
        assert!(
            err.contains("all: built: simple.image.gz (ok)")
                && err.contains("all: checked: every target ok")
                && err.contains("all: left out debian: NO_DEBIAN is set")
                && err.contains("all: left out VM runs: NO_KVM is set"),
            "{driver}: no summary:\n{err}"
        );
        let gz = fs::metadata(c.scripts.join("simple.image.gz"))
            .unwrap_or_else(|e| panic!("{driver}: simple.image.gz: {e}"));
        assert!(
            gz.len() > 1000,
            "{driver}: simple.image.gz is {} bytes",
            gz.len()
        );

        // A skip the machine forces (here: no kernel) is listed with its
        // reason; STRICT=1 makes it an error, without it all passes.
        let forced = [
            ("NO_DEBIAN", "1"),
            ("NO_DOCKER", "1"),
            ("NO_CHROOT", "1"),
            ("KVMRUN_KERNEL", "/nonexistent/vmlinuz"),
        ];
        let out = run(&c, 300, prog, args, &forced);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{driver}: {:?}\n{err}", out.status);
        assert!(
            err.contains("all: skipped VM runs: no readable kernel"),
            "{driver}: the skip is not in the summary:\n{err}"
        );
        let mut strict = forced.to_vec();
        strict.push(("STRICT", "1"));
        let out = run(&c, 300, prog, args, &strict);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(if driver == "make" { 2 } else { 1 }),
            "{driver} STRICT=1 with a skip:\n{err}"
        );
        assert!(
            err.contains("all: STRICT=1: a skip is an error"),
            "{driver}:\n{err}"
        );
    }
}

#[test]
fn with_the_tools_in_target_release_one_product_runs() {
    if !testkit::have("cc") {
        testkit::skip("no C compiler for the cookbook's hello (apt-get install gcc libc6-dev)");
        return;
    }
    if !Command::new("unshare")
        .args(["-r", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        testkit::skip("user namespaces are refused here: chrootrun cannot run");
        return;
    }
    for driver in ["minredo", "make"] {
        let c = copy(true);
        let out = run(&c, 120, driver, &["libs.runlocal"], &[]);
        assert!(
            out.status.success(),
            "{driver}: {:?}\n{}",
            out.status,
            text(&out.stderr)
        );
        let got = fs::read_to_string(c.scripts.join("libs.runlocal"))
            .unwrap_or_else(|e| panic!("{driver}: libs.runlocal: {e}"));
        assert_eq!(got, "Hello, world!\n", "{driver}");
    }
}

#[test]
fn system_tools_in_usr_sbin_are_found_off_path() {
    let c = copy(false);
    let Some(prog) = ["debootstrap", "useradd", "chroot"]
        .into_iter()
        .find(|p| Path::new("/usr/sbin").join(p).is_file())
    else {
        testkit::skip("none of debootstrap, useradd, chroot is in /usr/sbin");
        return;
    };
    let out = run(&c, 30, "./need.sh", &[prog], &[]);
    assert!(
        out.status.success(),
        "need.sh {prog} with PATH {}: {}",
        bare_path(&c.redo_bin),
        text(&out.stderr)
    );
    let out = run(&c, 30, "./need.sh", &["no-such-program-here"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing: no-such-program-here"));
}

#[test]
fn docker_sh_passes_engine_flags_as_words() {
    let c = copy(false);
    // printf stands in for the engine: it shows the words it was given.
    let shim = c.redo_bin.join("fake-engine");
    fs::write(&shim, "#!/bin/sh\nprintf '[%s]' \"$@\"\n").unwrap_or_else(|e| panic!("{e}"));
    let st = Command::new("chmod")
        .arg("+x")
        .arg(&shim)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success());
    let env = [
        ("ENGINE", "fake-engine --log-level warn"),
        ("ENGINE_FLAGS", "--runtime runc"),
    ];
    let out = run(&c, 30, "./docker.sh", &["load", "my image.tar"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "[--log-level][warn][--runtime][runc][load][-i][my image.tar]"
    );
}
