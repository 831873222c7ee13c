//! `layerdiff` as the cookbook's `default.list.do` runs it.

use std::fs;
use std::process::Command as StdCommand;

use assert_cmd::Command;

fn layerdiff() -> Command {
    Command::cargo_bin("layerdiff").unwrap()
}

const BASE: &str = ". 0040755-0-0-0
./bin 0040755-0-0-0
./bin/hello 0100755-0-0-22e4d2865e654f830f6bfc146e170846dde15185be675db4e9cd987cb02afa78
./bin/old 0100755-0-0-22e4d2865e654f830f6bfc146e170846dde15185be675db4e9cd987cb02afa78
./init 0120777-0-0-14bdc0fb069623c05620fc62589fe1f52ee6fb67a34deb447bf6f1f7e881f32a
";

const NEW: &str = ". 0040755-0-0-0
./bin 0040755-0-0-0
./bin/hello 0100755-0-0-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
./init 0120777-0-0-14bdc0fb069623c05620fc62589fe1f52ee6fb67a34deb447bf6f1f7e881f32a
./lib 0040755-0-0-0
./lib/libc.so.6 0100644-0-0-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
";

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn comm_13_with_files_stdin_and_dev_null() {
    let t = tempfile::tempdir().unwrap();
    let base = write(t.path(), "base.list", BASE);
    let new = write(t.path(), "new.list", NEW);
    let want =
        "./bin/hello 0100755-0-0-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
./lib 0040755-0-0-0
./lib/libc.so.6 0100644-0-0-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
";
    layerdiff()
        .args([&base, &new])
        .assert()
        .success()
        .stdout(want);
    layerdiff()
        .args([&base, "-"])
        .write_stdin(NEW)
        .assert()
        .success()
        .stdout(want);
    layerdiff()
        .args(["-", &new])
        .write_stdin(BASE)
        .assert()
        .success()
        .stdout(want);
    layerdiff()
        .args(["/dev/null", &new])
        .assert()
        .success()
        .stdout(NEW);
    // The same answer as comm, which the cookbook used.
    let comm = StdCommand::new("comm")
        .args(["-1", "-3", &base, &new])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(comm.stdout).unwrap(), want);
}

#[test]
fn whiteouts_in_sorted_position() {
    let t = tempfile::tempdir().unwrap();
    let base = write(t.path(), "base.list", BASE);
    let new = write(t.path(), "new.list", NEW);
    layerdiff()
        .args(["--whiteouts", &base, &new])
        .assert()
        .success()
        .stdout(
            "./bin/.wh.old 0100000-0-0-whiteout
./bin/hello 0100755-0-0-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
./lib 0040755-0-0-0
./lib/libc.so.6 0100644-0-0-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
",
        );
    // Deleting a whole directory gives one whiteout, not one per file.
    layerdiff()
        .args(["--whiteouts", &new, "-"])
        .write_stdin(". 0040755-0-0-0\n./init 0120777-0-0-14bdc0fb069623c05620fc62589fe1f52ee6fb67a34deb447bf6f1f7e881f32a\n")
        .assert()
        .success()
        .stdout("./.wh.bin 0100000-0-0-whiteout\n./.wh.lib 0100000-0-0-whiteout\n");
}

#[test]
fn nul_terminated_records() {
    let base = BASE.replace('\n', "\0");
    let new = NEW
        .replace('\n', "\0")
        .replace("./lib/libc.so.6", "./lib/a\nb");
    let t = tempfile::tempdir().unwrap();
    let b = write(t.path(), "b", &base);
    let out = layerdiff()
        .args(["-z", &b, "-"])
        .write_stdin(new)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.ends_with(b"./lib/a\nb 0100644-0-0-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\0"));
}

fn one_line_error(cmd: &mut Command, want: &str) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(want), "{err:?} should start with {want:?}");
    assert!(out.stdout.is_empty() || out.stdout.ends_with(b"\n"));
}

#[test]
fn bad_input_names_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let new = write(t.path(), "new.list", NEW);
    let unsorted = write(
        t.path(),
        "unsorted.list",
        "./b 0040755-0-0-0\n./a 0040755-0-0-0\n",
    );
    let dup = write(
        t.path(),
        "dup.list",
        "./a 0040755-0-0-0\n./a 0040700-0-0-0\n",
    );
    let bad = write(
        t.path(),
        "bad.list",
        ". 0040755-0-0-0\n./x 0100644-0-0-nothex\n",
    );
    one_line_error(
        layerdiff().args([&unsorted, &new]),
        &format!("layerdiff: \"{unsorted}\": line 2: not sorted: \"./a\" after \"./b\""),
    );
    one_line_error(
        layerdiff().args([&new, &dup]),
        &format!("layerdiff: \"{dup}\": line 2: duplicate name \"./a\""),
    );
    one_line_error(
        layerdiff().args([&new, &bad]),
        &format!(
            "layerdiff: \"{bad}\": line 2: malformed list line: digest is not 64 lowercase hex digits"
        ),
    );
    one_line_error(
        layerdiff().args(["/nonexistent.list", &new]),
        "layerdiff: \"/nonexistent.list\": cannot open: No such file",
    );
    one_line_error(
        layerdiff().args(["-", "-"]),
        "layerdiff: BASE and NEW cannot both be stdin",
    );
    let out = layerdiff().arg(&new).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn closed_stdout_exits_quietly() {
    let t = tempfile::tempdir().unwrap();
    let mut big = String::new();
    for i in 0..200_000 {
        big.push_str(&format!("./f{i:07} 0040755-0-0-0\n"));
    }
    let new = write(t.path(), "big.list", &big);
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("layerdiff"));
    cmd.args(["/dev/null", &new]);
    testkit::assert_quiet_when_stdout_closed(cmd, Vec::new(), 10);
}
