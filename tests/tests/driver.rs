//! The redo driver's calling convention, checked on small `.do` files, so
//! the cookbook tests can trust it: `$1`/`$2`/`$3`, stdout as the product,
//! `default.*.do` up the tree, failures keep nothing, dependencies rebuild
//! what they should and nothing else.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn minredo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_minredo"))
}

fn run(dir: &Path, prog: &str, args: &[&str]) -> Output {
    let exe = minredo();
    // redo-ifchange is minredo called by that name: go through the link the
    // driver makes in its database, or make one.
    let bin = dir.join(".redo/bin");
    let program = if prog == "redo" {
        exe
    } else {
        fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
        let link = bin.join(prog);
        if !link.exists() {
            std::os::unix::fs::symlink(&exe, &link).unwrap_or_else(|e| panic!("{e}"));
        }
        link
    };
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("minredo: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    fs::write(p, text).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

#[test]
fn arguments_and_stdout_product() {
    let d = tmp();
    write(d.path(), "default.b.c.do", "echo \"$1|$2|$3\"\n");
    let out = run(d.path(), "redo", &["x.b.c"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "x.b.c"), "x.b.c|x|x.b.c.redo-tmp\n");
}

#[test]
fn dollar3_product_and_lookup_up_the_tree() {
    let d = tmp();
    write(d.path(), "default.out.do", "printf '%s' \"$2\" >\"$3\"\n");
    write(d.path(), "sub/keep", "");
    let out = run(d.path().join("sub").as_path(), "redo", &["a.out"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "sub/a.out"), "sub/a");
}

#[test]
fn failure_keeps_no_output_and_old_target() {
    let d = tmp();
    write(
        d.path(),
        "t.do",
        "echo new; echo partial >\"$3\" 2>/dev/null; exit 3\n",
    );
    write(d.path(), "t", "old\n");
    let out = run(d.path(), "redo", &["t"]);
    assert!(!out.status.success());
    assert_eq!(read(d.path(), "t"), "old\n");
    let left: Vec<_> = fs::read_dir(d.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("redo-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn writing_both_outputs_is_an_error() {
    let d = tmp();
    write(d.path(), "t.do", "echo a; echo b >\"$3\"\n");
    let out = run(d.path(), "redo", &["t"]);
    assert!(!out.status.success());
    assert!(!d.path().join("t").exists());
}

#[test]
fn ifchange_rebuilds_only_what_changed_once_per_run() {
    let d = tmp();
    // top depends on mid twice (directly and via other); each build logs.
    write(d.path(), "src", "1\n");
    write(
        d.path(),
        "mid.do",
        "redo-ifchange src; echo mid >>log; cat src\n",
    );
    write(
        d.path(),
        "other.do",
        "redo-ifchange mid; echo other >>log; cat mid\n",
    );
    write(
        d.path(),
        "top.do",
        "redo-ifchange mid other; echo top >>log; cat mid other\n",
    );
    let out = run(d.path(), "redo-ifchange", &["top"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "log"), "mid\nother\ntop\n");
    // Nothing changed: nothing runs.
    let out = run(d.path(), "redo-ifchange", &["top"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "log"), "mid\nother\ntop\n");
    // The source changed: everything above it runs once.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(d.path(), "src", "2\n");
    let out = run(d.path(), "redo-ifchange", &["top"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "log"), "mid\nother\ntop\nmid\nother\ntop\n");
    assert_eq!(read(d.path(), "top"), "2\n2\n");
}

/// A value that is no file as a dependency: `redo-always` rebuilds the
/// target every run, and `redo-stamp` lets what depends on it rebuild
/// only when the value changed (scripts/default.setting.do).
#[test]
fn always_and_stamp_rebuild_dependents_only_on_change() {
    let d = tmp();
    write(
        d.path(),
        "setting.do",
        "cat value >\"$3\"; echo setting >>log; redo-always; redo-stamp <\"$3\"\n",
    );
    write(
        d.path(),
        "image.do",
        "redo-ifchange setting; echo image >>log; cat setting\n",
    );
    write(d.path(), "value", "gzip\n");
    let ok = |o: Output| assert!(o.status.success(), "{o:?}");
    ok(run(d.path(), "redo-ifchange", &["image"]));
    assert_eq!(read(d.path(), "log"), "setting\nimage\n");
    // The same value: the setting runs again, the image does not.
    ok(run(d.path(), "redo-ifchange", &["image"]));
    assert_eq!(read(d.path(), "log"), "setting\nimage\nsetting\n");
    // A new value: both run, once.
    write(d.path(), "value", "zstd\n");
    ok(run(
        d.path(),
        "redo-ifchange",
        &["image", "setting", "image"],
    ));
    assert_eq!(
        read(d.path(), "log"),
        "setting\nimage\nsetting\nsetting\nimage\n"
    );
    assert_eq!(read(d.path(), "image"), "zstd\n");
    // Outside a .do script they are errors, not silently nothing.
    for prog in ["redo-always", "redo-stamp"] {
        let o = run(d.path(), prog, &[]);
        assert!(!o.status.success(), "{prog}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not run by a .do script"), "{prog}: {err}");
    }
}

/// The cookbook's scripts/default.setting.do: the value is written as it
/// is, never run, and a target that names no variable is refused before
/// anything is expanded (the name goes through `eval`).
#[test]
fn cookbook_setting_writes_the_value_and_refuses_other_names() {
    let d = tmp();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/default.setting.do");
    fs::copy(&script, d.path().join("default.setting.do"))
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let value = "x $(touch pwned) `touch pwned2`; y";
    let out = Command::new(minredo())
        .arg("FOO.setting")
        .current_dir(d.path())
        .env("FOO", value)
        .output()
        .unwrap_or_else(|e| panic!("minredo: {e}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "FOO.setting"), format!("{value}\n"));
    for name in [
        "a;touch pwned.setting",
        "1X.setting",
        "a-b.setting",
        "a b.setting",
    ] {
        let out = run(d.path(), "redo", &[name]);
        assert!(!out.status.success(), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not the name of an environment variable"),
            "{name}: {err}"
        );
        assert!(!d.path().join(name).exists(), "{name}");
    }
    assert!(!d.path().join("pwned").exists() && !d.path().join("pwned2").exists());
}

#[test]
fn ifcreate_and_targets_without_files() {
    let d = tmp();
    // stamp.do makes a directory as a side product and no file, like the
    // cookbook's NAME.fs; user.do depends on it and on a file not existing.
    write(
        d.path(),
        "stamp.do",
        "exec >&2; mkdir -p tree; echo x >>tree/n\n",
    );
    write(
        d.path(),
        "user.do",
        "redo-ifchange stamp\nif [ -e flag ]; then redo-ifchange flag; else redo-ifcreate flag; fi\nwc -l <tree/n; echo >>log\n",
    );
    let out = run(d.path(), "redo-ifchange", &["user"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!d.path().join("stamp").exists());
    assert_eq!(read(d.path(), "user").lines().next(), Some("1"));
    write(d.path(), "flag", "");
    let out = run(d.path(), "redo-ifchange", &["user"]);
    assert!(out.status.success(), "{out:?}");
    // user rebuilt (flag appeared), stamp did not.
    assert_eq!(read(d.path(), "user").lines().next(), Some("1"));
    assert_eq!(read(d.path(), "log"), "\n\n");
    let out = run(d.path(), "redo", &["stamp"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(d.path(), "redo-ifchange", &["user"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "user").lines().next(), Some("2"));
}

#[test]
fn missing_source_is_an_error() {
    let d = tmp();
    write(d.path(), "t.do", "redo-ifchange nothere; echo x\n");
    let out = run(d.path(), "redo", &["t"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rule to make"));
    assert!(!d.path().join("t").exists());
}

/// Runs `minredo ARGS` in `dir`, killing it and failing the test if it
/// has not ended within 60 s (a deadlock must fail, not hang CI).
fn run_bounded(dir: &Path, args: &[&str]) -> Output {
    use std::time::{Duration, Instant};
    let mut child = Command::new(minredo())
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("minredo: {e}"));
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > Duration::from_secs(60) => {
                let _ = child.kill();
                let out = child.wait_with_output();
                panic!("minredo {args:?} did not finish in 60 s (deadlock?): {out:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for minredo: {e}"),
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("minredo output: {e}"))
}

/// a.do and b.do each wait (up to 5 s) until both have started, which only
/// happens when they run at the same time; both then need c.
fn diamond(dir: &Path) {
    write(dir, "top.do", "redo-ifchange a b\ncat a b\n");
    let side = "touch \"$1.started\"\ni=0\n\
        while ! [ -e a.started ] || ! [ -e b.started ]; do\n\
        \ti=$((i + 1)); [ $i -lt 100 ] || { echo \"$1: the other side never started\" >&2; exit 9; }\n\
        \tsleep 0.05\ndone\n\
        redo-ifchange c\necho \"$1\"; cat c\n";
    write(dir, "a.do", side);
    write(dir, "b.do", side);
    write(dir, "c.do", "echo c >>log\nsleep 0.3\necho c\n");
}

#[test]
fn diamond_under_j_builds_the_shared_dependency_once() {
    let d = tmp();
    diamond(d.path());
    let out = run_bounded(d.path(), &["-j2", "top"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(d.path(), "top"), "a\nc\nb\nc\n");
    assert_eq!(read(d.path(), "log"), "c\n", "c was built more than once");
    // The run cleaned up its jobserver and wait-for graph.
    let db: Vec<String> = fs::read_dir(d.path().join(".redo"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!db.iter().any(|n| n.starts_with("jobserver")), "{db:?}");
    let waits = fs::read_dir(d.path().join(".redo/wait"))
        .unwrap_or_else(|e| panic!("{e}"))
        .count();
    assert_eq!(waits, 0);
    // Up to date now: nothing runs.
    let ifchange = run(d.path(), "redo-ifchange", &["-j", "2", "top"]);
    assert!(ifchange.status.success(), "{ifchange:?}");
    assert_eq!(read(d.path(), "log"), "c\n");
}

#[test]
fn without_j_the_diamond_runs_one_side_at_a_time() {
    // The control for the test above: the barrier in a.do fails when a
    // and b cannot run at once, so that test shows real parallelism.
    let d = tmp();
    diamond(d.path());
    let out = run_bounded(d.path(), &["top"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the other side never started"));
    assert!(!d.path().join("top").exists());
}

#[test]
fn j_bounds_the_builds_running_at_once_across_nested_processes() {
    // top needs p and q; p needs 1.x 2.x 3.x, q needs 4.x 5.x 6.x. Each
    // leaf notes how many leaves are running (itself included), then holds
    // its slot for a while. p.do and q.do lend their tokens to their
    // nested redo-ifchange, so at most N leaves run at once.
    for jobs in [2usize, 3] {
        let d = tmp();
        fs::create_dir(d.path().join("running")).unwrap_or_else(|e| panic!("{e}"));
        write(d.path(), "top.do", "redo-ifchange p q\n");
        write(d.path(), "p.do", "redo-ifchange 1.x 2.x 3.x\n");
        write(d.path(), "q.do", "redo-ifchange 4.x 5.x 6.x\n");
        write(
            d.path(),
            "default.x.do",
            "mkdir \"running/$2\"\nls running | wc -l >>counts\nsleep 0.3\nrmdir \"running/$2\"\n",
        );
        let j = format!("-j{jobs}");
        let out = run_bounded(d.path(), &[j.as_str(), "top"]);
        assert!(out.status.success(), "{out:?}");
        let counts: Vec<usize> = read(d.path(), "counts")
            .lines()
            .map(|l| l.trim().parse().unwrap_or(usize::MAX))
            .collect();
        assert_eq!(counts.len(), 6, "{counts:?}");
        let max = counts.iter().copied().max().unwrap_or(0);
        assert!(max <= jobs, "-j{jobs}: {max} builds at once ({counts:?})");
        assert!(max >= 2, "-j{jobs}: never two builds at once ({counts:?})");
        eprintln!("-j{jobs}: leaves running at once: {counts:?}");
    }
}

#[test]
fn a_cycle_is_an_error_not_a_deadlock() {
    for jobs in ["-j1", "-j2", "-j4"] {
        // Through the chain of nested processes: a -> b -> a.
        let d = tmp();
        write(d.path(), "a.do", "redo-ifchange b\necho a\n");
        write(d.path(), "b.do", "redo-ifchange a\necho b\n");
        let out = run_bounded(d.path(), &[jobs, "a"]);
        assert!(!out.status.success(), "{jobs}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("dependency cycle: b -> a -> b"),
            "{jobs}: {err}"
        );

        // Across two parallel branches: top builds x and y at once, then
        // x needs y while y needs x. Neither branch's own chain shows the
        // cycle; the shared wait-for graph does.
        let d = tmp();
        write(d.path(), "top.do", "redo-ifchange x y\n");
        write(d.path(), "x.do", "sleep 0.3\nredo-ifchange y\necho x\n");
        write(d.path(), "y.do", "sleep 0.3\nredo-ifchange x\necho y\n");
        let out = run_bounded(d.path(), &[jobs, "top"]);
        assert!(!out.status.success(), "{jobs}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("dependency cycle"), "{jobs}: {err}");
        assert!(!d.path().join("top").exists());
    }
}

#[test]
fn under_j_a_failure_fails_the_command_and_the_others_finish_whole() {
    let d = tmp();
    write(d.path(), "top.do", "redo-ifchange ok1 bad ok2\n");
    write(d.path(), "bad.do", "sleep 0.1\nexit 3\n");
    write(d.path(), "ok1.do", "sleep 0.3\necho 1\n");
    write(d.path(), "ok2.do", "sleep 0.3\necho 2\n");
    let out = run_bounded(d.path(), &["-j3", "top"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.do failed"), "{err}");
    assert!(!d.path().join("top").exists());
    assert!(!d.path().join("bad").exists());
    // The builds already running when bad failed ended normally.
    assert_eq!(read(d.path(), "ok1"), "1\n");
    let left: Vec<String> = fs::read_dir(d.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("redo-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
