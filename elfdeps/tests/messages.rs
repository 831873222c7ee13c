//! elfdeps' messages name files and libraries through the one quoting
//! rule: a `DT_NEEDED` name or an input path holding a newline or a
//! terminal escape cannot forge a second message line or reach the
//! terminal raw.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::Command as Cmd;

fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cc(dir: &Path, args: &[&str]) {
    let st = Command::new("cc")
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "cc {args:?}");
}

/// A program whose DT_NEEDED is `soname`: linked against a library that
/// names itself so, which is then removed.
fn program_needing(dir: &Path, soname: &str) -> std::path::PathBuf {
    fs::write(dir.join("l.c"), "int l(void){return 1;}\n").unwrap();
    fs::write(
        dir.join("p.c"),
        "int l(void);\nint main(void){return l();}\n",
    )
    .unwrap();
    let soname_arg = format!("-Wl,-soname,{soname}");
    cc(
        dir,
        &["-shared", "-fPIC", "-o", "libl.so", &soname_arg, "l.c"],
    );
    cc(dir, &["-o", "prog", "p.c", "./libl.so"]);
    fs::remove_file(dir.join("libl.so")).unwrap();
    dir.join("prog")
}

#[test]
fn a_needed_name_with_a_newline_cannot_forge_a_line() {
    if !have_cc() {
        testkit::skip("cc is not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let forged = "libx.so\nelfdeps: all libraries found\x1b[2J";
    let prog = program_needing(t.path(), forged);
    let input = format!("{}\n", prog.display());
    for args in [&["--allow-missing"][..], &[]] {
        let out = Cmd::cargo_bin("elfdeps")
            .unwrap()
            .args(args)
            .write_stdin(input.clone())
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(if args.is_empty() { 1 } else { 0 }),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "a forged line: {err:?}");
        assert!(!err.contains('\x1b'), "a raw escape: {err:?}");
        assert!(
            err.contains(r#""libx.so\nelfdeps: all libraries found\x1b[2J""#),
            "{err:?}"
        );
        assert!(
            err.contains(&format!("(needed by \"{}\")", prog.display())),
            "{err:?}"
        );
    }
}

#[test]
fn an_input_path_with_control_bytes_is_quoted() {
    let t = tempfile::tempdir().unwrap();
    let name = t.path().join("no\rsuch\tfile");
    let out = Cmd::cargo_bin("elfdeps")
        .unwrap()
        .write_stdin(format!("{}\n", name.display()))
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(r#"no\rsuch\tfile""#), "{err:?}");
    assert!(!err.contains('\r'), "{err:?}");
}
