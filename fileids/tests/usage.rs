//! `fileids` reads names on stdin: a file argument is refused saying so
//! (exit 2), and the shared tree options keep their long forms.

use std::process::Command;

#[test]
fn a_file_argument_says_names_come_on_stdin() {
    let o = Command::new(env!("CARGO_BIN_EXE_fileids"))
        .arg("bin/hello")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.starts_with("fileids: unexpected argument \"bin/hello\": names are read on stdin")
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn null_and_owner_long_forms() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), b"x").unwrap();
    let o = assert_cmd::Command::new(env!("CARGO_BIN_EXE_fileids"))
        .arg("-C")
        .arg(t.path())
        .args(["--null", "--owner", "7:8"])
        .write_stdin(&b"./f\0"[..])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.starts_with("./f 0100"), "{out}");
    assert!(out.contains("-7-8-"), "{out}");
}
