//! The command line's refusals: a name given both on stdin and as
//! `--add` (the kernel's unpacker would let the second silently win), a
//! file argument where names come on stdin, and an archive written to a
//! terminal without `--force` (as gzip(1) refuses).

use std::fs::{self, File};
use std::io::Read;
use std::process::{Command, Output, Stdio};

fn mkinitrd() -> assert_cmd::Command {
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_mkinitrd"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The member names of a newc archive, in order (headers are 110 bytes
/// of ASCII hex, name and data padded to 4).
fn members(mut a: &[u8]) -> Vec<String> {
    let hex = |b: &[u8]| usize::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let pad = |n: usize| (n + 3) & !3;
    let mut names = Vec::new();
    while a.len() >= 110 {
        assert_eq!(&a[..6], b"070701");
        let size = hex(&a[54..62]);
        let namesize = hex(&a[94..102]);
        let name = String::from_utf8_lossy(&a[110..110 + namesize - 1]).into_owned();
        a = &a[pad(110 + namesize)..];
        a = &a[pad(size).min(a.len())..];
        if name == "TRAILER!!!" {
            return names;
        }
        names.push(name);
    }
    panic!("no trailer after {names:?}");
}

#[test]
fn add_of_a_name_in_the_input_is_an_error_not_a_second_member() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("init"), b"from the tree").unwrap();
    let host = t.path().join("host-init");
    fs::write(&host, b"from the host").unwrap();
    let add = format!("init={}", host.display());
    for input in [&b".\n./init\n"[..], b".\ninit\n"] {
        let o = mkinitrd()
            .arg("-C")
            .arg(&root)
            .args(["--add", &add])
            .write_stdin(input)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("mkinitrd: stdin line 2: ")
                && err.contains("also given as --add")
                && err.lines().count() == 1,
            "{err}"
        );
    }
    // Without it in the input, one `init`, from the host.
    let o = mkinitrd()
        .arg("-C")
        .arg(&root)
        .args(["--add", &add])
        .write_stdin(&b".\n"[..])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(members(&o.stdout), [".", "init"]);
    // The same member twice in --add is a usage error.
    let o = mkinitrd()
        .args([
            "--add",
            &add,
            "--add",
            &format!("./init={}", host.display()),
        ])
        .write_stdin(&b".\n"[..])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("given twice"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn a_file_argument_says_names_come_on_stdin() {
    let o = mkinitrd().arg("bin/hello").output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"bin/hello\"") && err.contains("read on stdin") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_bad_owner_is_a_usage_error_naming_the_option() {
    let o = mkinitrd().args(["--owner", "root:root"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("mkinitrd: --owner wants UID:GID"), "{err}");
}

/// Runs `cmd` with stdout on the slave of a new pseudo-terminal, stdin
/// `.\n`, returning its status and stderr and how many bytes reached the
/// terminal (read as they come, so the child never blocks).
fn on_terminal(cmd: Command) -> (Output, usize) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut master = File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut seen = 0usize;
        let mut buf = [0u8; 64 * 1024];
        // EIO once no process holds the slave open any more.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen += n;
        }
        seen
    });
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    fs::write(&input, b".\n").unwrap();
    let child = {
        // The Command holds the slave until dropped, here.
        let mut cmd = cmd;
        cmd.stdin(File::open(&input).unwrap())
            .stdout(Stdio::from(pty.slave))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let out = child.wait_with_output().expect("wait");
    (out, reader.join().expect("reader"))
}

#[test]
fn no_archive_to_a_terminal_without_force() {
    let t = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mkinitrd"));
        cmd.arg("-C").arg(t.path());
        if gzip {
            cmd.arg("--gzip");
        }
        let (o, seen) = on_terminal(cmd);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("not written to a terminal"), "{err}");
        assert_eq!(seen, 0, "bytes reached the terminal");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mkinitrd"));
    cmd.arg("--force").arg("-C").arg(t.path());
    let (o, seen) = on_terminal(cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(seen >= 2 * 110, "{seen} bytes on the terminal");
}

/// My own attack on `--add`: a member whose parent the archive does not
/// hold as a directory. The kernel's unpacker creates no missing parent
/// and skips a member it cannot open without a word, so `--add
/// sbin/init=…` with no `sbin` (or with `sbin` a file) used to give an
/// archive that boots without that file.
#[test]
fn add_under_a_missing_or_non_directory_parent_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("sbin")).unwrap();
    fs::write(root.join("file"), b"x").unwrap();
    let host = t.path().join("host");
    fs::write(&host, b"from the host").unwrap();
    let h = host.display();
    for (input, add, want) in [
        (
            &b".\n"[..],
            format!("sbin/init={h}"),
            "its parent \"sbin\" is not in the archive",
        ),
        (
            b".\n./file\n",
            format!("file/x={h}"),
            "its parent \"file\" is not a directory",
        ),
        (
            b".\n./sbin\n",
            format!("sbin/a/b={h}"),
            "its parent \"sbin/a\" is not in the archive",
        ),
    ] {
        let o = mkinitrd()
            .arg("-C")
            .arg(&root)
            .args(["--add", &add])
            .write_stdin(input)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{add}: {err}");
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{add}: {err}"
        );
    }
    // With the parent in the input (or added first as a directory) it is
    // written, after it.
    let o = mkinitrd()
        .arg("-C")
        .arg(&root)
        .args(["--add", &format!("sbin/init={h}")])
        .write_stdin(&b".\n./sbin\n"[..])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(members(&o.stdout), [".", "sbin", "sbin/init"]);
    let o = mkinitrd()
        .arg("-C")
        .arg(&root)
        .args(["--add", &format!("d={}", root.join("sbin").display())])
        .args(["--add", &format!("d/init={h}")])
        .write_stdin(&b".\n"[..])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(members(&o.stdout), [".", "d", "d/init"]);
}
