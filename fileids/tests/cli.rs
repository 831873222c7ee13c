//! `fileids` as a user runs it: on real trees, against the cookbook's
//! `fileids.py`, with every kind of bad input: missing, empty, unreadable
//! and changing files, bad options and bad fakeroot state.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use testkit::{have, is_root, skip};

fn fileids() -> Command {
    Command::cargo_bin("fileids").unwrap()
}

/// `find . | LC_ALL=C sort` in `dir`, as the cookbook runs it.
fn sorted_names(dir: &Path) -> Vec<u8> {
    let out = StdCommand::new("sh")
        .args(["-c", "find . | LC_ALL=C sort"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("bin")).unwrap();
    fs::write(d.join("bin/hello"), b"hello\n").unwrap();
    fs::set_permissions(d.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(d.join("empty"), b"").unwrap();
    fs::set_permissions(d.join("empty"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("bin/hello", d.join("init")).unwrap();
    fs::create_dir(d.join("with space")).unwrap();
    fs::write(d.join("with space/a b"), b"x").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    fs::write(d.join("big"), &big).unwrap();
    t
}

/// The ownership `fileids` should print for `path` as this process sees it.
fn owner_of(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn format_byte_for_byte() {
    let t = tree();
    let d = t.path();
    let (u, g) = owner_of(&d.join("bin/hello"));
    let input = "./bin/hello\n./empty\n./init\n./with space/a b\n";
    let out = fileids()
        .current_dir(d)
        .write_stdin(input)
        .assert()
        .success();
    // SHA-256 of "hello\n", of "", of "bin/hello" and of "x".
    let expected = format!(
        "./bin/hello 0100755-{u}-{g}-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\n\
         ./empty 0100600-{u}-{g}-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
         ./init 0120777-{u}-{g}-14bdc0fb069623c05620fc62589fe1f52ee6fb67a34deb447bf6f1f7e881f32a\n\
         ./with space/a b 0100644-{u}-{g}-2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n"
    );
    assert_eq!(
        String::from_utf8(out.get_output().stdout.clone()).unwrap(),
        expected
    );
}

#[test]
fn directory_line_and_owner_override() {
    let t = tree();
    fileids()
        .args(["-C", t.path().to_str().unwrap(), "--owner", "0:0"])
        .write_stdin(".\n./bin\n")
        .assert()
        .success()
        .stdout(". 0040700-0-0-0\n./bin 0040755-0-0-0\n".replace("0040700", &mode_of(t.path())));
}

fn mode_of(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{:07o}", fs::symlink_metadata(p).unwrap().mode())
}

#[test]
fn matches_the_seed_fileids_py() {
    if !have("python3") {
        skip("python3 is not installed, so the seed's fileids.py cannot run");
        return;
    }
    let t = tree();
    let names = sorted_names(t.path());
    let mut seed = StdCommand::new("python3");
    seed.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_fileids.py"))
        .current_dir(t.path());
    let seed = testkit::run(seed, &names);
    assert!(seed.status.success());
    for jobs in ["1", "2", "7"] {
        fileids()
            .current_dir(t.path())
            .args(["-j", jobs])
            .write_stdin(names.clone())
            .assert()
            .success()
            .stdout(seed.stdout.clone());
    }
}

#[test]
fn order_is_input_order_with_many_threads() {
    let t = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    // Sizes vary so that threads finish out of order.
    for i in 0..400u32 {
        let name = format!("f{i:04}");
        fs::write(
            t.path().join(&name),
            vec![i as u8; (i as usize % 17) * 40_000],
        )
        .unwrap();
        names.extend_from_slice(format!("./{name}\n").as_bytes());
    }
    let one = fileids()
        .current_dir(t.path())
        .args(["-j", "1"])
        .write_stdin(names.clone())
        .output()
        .unwrap();
    let many = fileids()
        .current_dir(t.path())
        .args(["-j", "8"])
        .write_stdin(names)
        .output()
        .unwrap();
    assert!(one.status.success() && many.status.success());
    assert_eq!(one.stdout.iter().filter(|&&b| b == b'\n').count(), 400);
    assert_eq!(one.stdout, many.stdout);
}

#[test]
fn non_utf8_names_pass_through() {
    let t = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff");
    fs::write(t.path().join(name), b"").unwrap();
    let out = fileids()
        .current_dir(t.path())
        .write_stdin(&b"./caf\xe9 \xff\n"[..])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.starts_with(b"./caf\xe9 \xff 0100644-"),
        "{:?}",
        out.stdout
    );
}

#[test]
fn newline_names_need_z() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("a\nb"), b"").unwrap();
    let out = fileids()
        .current_dir(t.path())
        .arg("-0")
        .write_stdin(&b"./a\nb\0"[..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("fileids: stdin line 1: \"./a\\nb\": name contains a newline"),
        "{err}"
    );

    let out = fileids()
        .current_dir(t.path())
        .args(["-0", "-z"])
        .write_stdin(&b"./a\nb\0"[..])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"./a\nb 0100644-"));
    assert_eq!(out.stdout.last(), Some(&0u8));
}

fn one_line_error(cmd: &mut Command, code: i32, starts: &str) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(starts),
        "{err:?} should start with {starts:?}"
    );
    // No partial line on stdout.
    assert!(
        out.stdout.is_empty() || out.stdout.ends_with(b"\n"),
        "{:?}",
        out.stdout
    );
}

#[test]
fn missing_name_is_an_error() {
    let t = tree();
    one_line_error(
        fileids()
            .current_dir(t.path())
            .write_stdin("./bin/hello\n./nope\n"),
        1,
        "fileids: stdin line 2: \"./nope\": cannot stat: No such file or directory",
    );
}

#[test]
fn empty_name_is_an_error() {
    one_line_error(
        fileids().write_stdin("\n"),
        1,
        "fileids: stdin line 1: \"\": empty name",
    );
}

#[test]
fn unreadable_file_is_an_error() {
    let t = tree();
    let f = t.path().join("secret");
    fs::write(&f, b"s").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o000)).unwrap();
    if is_root() {
        // Root reads anything, so read as nobody through setpriv.
        if !have("setpriv") {
            skip("root without setpriv cannot make a file unreadable");
            return;
        }
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = assert_cmd::cargo::cargo_bin("fileids");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin)
            .current_dir(t.path())
            .write_stdin("./secret\n");
        one_line_error(
            &mut cmd,
            1,
            "fileids: stdin line 1: \"./secret\": cannot open: Permission denied",
        );
    } else {
        one_line_error(
            fileids().current_dir(t.path()).write_stdin("./secret\n"),
            1,
            "fileids: stdin line 1: \"./secret\": cannot open: Permission denied",
        );
    }
}

#[test]
fn file_whose_size_changes_while_hashed_is_an_error() {
    // /proc files say size 0 and then produce bytes: to fileids that is
    // exactly a file that changed size between stat and the end of reading.
    one_line_error(
        fileids().args(["-C", "/proc"]).write_stdin("./version\n"),
        1,
        "fileids: stdin line 1: \"./version\": file changed while being hashed (size 0 when listed",
    );
}

#[test]
fn bad_options_are_usage_errors() {
    one_line_error(
        fileids().args(["--owner", "root"]).write_stdin(""),
        2,
        "fileids: --owner wants UID:GID",
    );
    one_line_error(
        fileids().args(["-j", "0"]).write_stdin(""),
        2,
        "fileids: invalid value '0'",
    );
    one_line_error(
        fileids().arg("--bogus").write_stdin(""),
        2,
        "fileids: unexpected argument '--bogus'",
    );
}

#[test]
fn bad_fakeroot_state_names_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    fs::write(
        &state,
        "dev=fe00,ino=1,mode=100644,uid=0,gid=0,nlink=1,rdev=0\nnonsense\n",
    )
    .unwrap();
    one_line_error(
        fileids().arg("--fakeroot").arg(&state).write_stdin(""),
        1,
        &format!(
            "fileids: {}: line 2: not a fakeroot state line",
            state.display()
        ),
    );
}

#[test]
fn real_fakeroot_state_gives_faked_owners_and_devices() {
    if !have("fakeroot") {
        skip("fakeroot is not installed (apt-get install fakeroot)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let state = t.path().join("state");
    let status = StdCommand::new("fakeroot")
        .arg("-s")
        .arg(&state)
        .args([
            "sh",
            "-c",
            "mkdir root && cd root && mkdir etc && echo x > etc/shadow && chown 0:42 etc/shadow && \
             chmod 640 etc/shadow && mkdir -p home/u && chown 1234:5678 home/u && mknod null c 1 3",
        ])
        .current_dir(t.path())
        .status()
        .unwrap();
    assert!(status.success());
    let out = fileids()
        .arg("-C")
        .arg(&root)
        .arg("--fakeroot")
        .arg(&state)
        .write_stdin("./etc/shadow\n./home/u\n./null\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        // SHA-256 of "x\n".
        "./etc/shadow 0100640-0-42-73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac\n\
         ./home/u 0040755-1234-5678-0\n./null 0020644-0-0-1:3\n"
    );
}

#[test]
fn devices_get_major_minor() {
    if !is_root() {
        skip("mknod needs root (the fakeroot test covers devices without it)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let mk = |name: &str, kind: &str, ma: &str, mi: &str| {
        assert!(StdCommand::new("mknod")
            .arg(d.join(name))
            .args([kind, ma, mi])
            .status()
            .unwrap()
            .success());
    };
    mk("null", "c", "1", "3");
    mk("sda", "b", "8", "0");
    assert!(StdCommand::new("mkfifo")
        .arg(d.join("fifo"))
        .status()
        .unwrap()
        .success());
    fs::set_permissions(d.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(d.join("sda"), fs::Permissions::from_mode(0o660)).unwrap();
    fs::set_permissions(d.join("fifo"), fs::Permissions::from_mode(0o644)).unwrap();
    fileids()
        .current_dir(d)
        .args(["--owner", "0:0"])
        .write_stdin("./fifo\n./null\n./sda\n")
        .assert()
        .success()
        .stdout("./fifo 0010644-0-0-0\n./null 0020666-0-0-1:3\n./sda 0060660-0-0-8:0\n");
}

#[test]
fn closed_stdout_exits_quietly() {
    let t = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for i in 0..5000 {
        fs::write(t.path().join(format!("f{i}")), b"data").unwrap();
        names.extend_from_slice(format!("./f{i}\n").as_bytes());
    }
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("fileids"));
    cmd.current_dir(t.path());
    testkit::assert_quiet_when_stdout_closed(cmd, names, 100);
}

/// A state may fake owners, modes and (as fakeroot's mknod does) a device
/// or FIFO over an empty regular file; any other type change is refused,
/// as the packers refuse the list it would give.
#[test]
fn fakeroot_state_may_not_change_a_files_type() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("f"), b"").unwrap();
    fs::create_dir(t.path().join("d")).unwrap();
    let state = t.path().join("state");
    let line = |name: &str, mode: &str| {
        let m = fs::symlink_metadata(t.path().join(name)).unwrap();
        format!(
            "dev={:x},ino={},mode={mode},uid=0,gid=0,nlink=1,rdev=259\n",
            m.dev(),
            m.ino()
        )
    };
    let run = |state_text: String, name: &str| {
        fs::write(&state, state_text).unwrap();
        fileids()
            .current_dir(t.path())
            .arg("--fakeroot")
            .arg(&state)
            .write_stdin(format!("./{name}\n"))
            .output()
            .unwrap()
    };
    // fakeroot's mknod: a character device and a FIFO over a regular file.
    let out = run(line("f", "20644"), "f");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "./f 0020644-0-0-1:3\n"
    );
    let out = run(line("f", "10644"), "f");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "./f 0010644-0-0-0\n"
    );
    // A directory over a regular file, a regular file over a directory.
    for (name, mode, says, is) in [
        ("f", "40755", "a directory", "a regular file"),
        ("d", "100644", "a regular file", "a directory"),
        ("d", "20644", "a character device", "a directory"),
    ] {
        let out = run(line(name, mode), name);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            err,
            format!("fileids: stdin line 1: \"./{name}\": the fakeroot state says {says}, but it is {is} on disk\n")
        );
    }
}
