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
