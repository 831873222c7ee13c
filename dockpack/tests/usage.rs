//! The command line's usage errors and refusals: a bad option value exits
//! 2 (as coreutils and `mkinitrd --add` do) before anything is read, bare
//! `dockpack` lists its subcommands, and neither packer writes a tar to a
//! terminal unless `--force` says so (as gzip(1) refuses).

mod common;

use std::fs::File;
use std::io::Read;
use std::process::{Command, Output, Stdio};

use common::{hello_tree, layer, list};

fn dockpack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dockpack"))
}

/// Runs `cmd` with stdout on the slave of a new pseudo-terminal (stdin
/// from /dev/null), returning its status and stderr, and how many bytes
/// reached the terminal (read as they come, so the child never blocks).
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
    let child = {
        // The Command holds the slave until dropped, here.
        let mut cmd = cmd;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(pty.slave))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let out = child.wait_with_output().expect("wait");
    (out, reader.join().expect("reader"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_env_label_tag_and_arch_values_are_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    let good = t.path().join("good.tar");
    layer(&root, &list(&root), &good);
    let g = good.to_str().unwrap();
    for (args, want) in [
        (
            vec!["--env", "NOEQUALS"],
            "--env \"NOEQUALS\": expected KEY=VALUE",
        ),
        (vec!["--env", "=v"], "--env \"=v\": expected KEY=VALUE"),
        (vec!["--label", "x"], "--label \"x\": expected KEY=VALUE"),
        (vec!["--tag", "UPPER:1"], "invalid tag"),
        (vec!["--tag", "a:b:c"], "invalid tag"),
        (
            vec!["--arch", "sparc"],
            "--arch \"sparc\": not a GOARCH name",
        ),
        (vec!["--arch", "x86_64"], "--arch \"x86_64\""),
        (vec!["--arch", ""], "--arch \"\""),
    ] {
        let o = dockpack().arg("image").args(&args).arg(g).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(
            err.starts_with("dockpack: ") && err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    // Every architecture the tool maps is accepted, and recorded.
    for arch in ["amd64", "arm64", "riscv64", "s390x", "386"] {
        let o = dockpack()
            .args(["image", "--arch", arch, g])
            .output()
            .unwrap();
        assert!(o.status.success(), "{arch}: {}", stderr(&o));
        let needle = format!("\"architecture\":\"{arch}\"");
        assert!(
            o.stdout
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{arch} not in the config"
        );
    }
}

#[test]
fn bare_dockpack_lists_its_subcommands() {
    let o = dockpack().output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty());
    for sub in ["layer", "image"] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} not listed: {err}"
        );
    }
}

#[test]
fn layer_null_has_a_long_form() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    let mut out = Vec::new();
    for flag in ["-0", "--null"] {
        let o = assert_cmd::Command::new(env!("CARGO_BIN_EXE_dockpack"))
            .args(["layer", flag, "-C"])
            .arg(&root)
            .write_stdin(&b"./bin\0./bin/hello\0"[..])
            .output()
            .unwrap();
        assert!(o.status.success(), "{flag}: {}", stderr(&o));
        out.push(o.stdout);
    }
    assert!(out[0].len() > 1024);
    assert_eq!(out[0], out[1]);
}

#[test]
fn layer_refuses_a_file_argument() {
    let o = dockpack().args(["layer", "bin/hello"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("read on stdin"), "{err}");
}

#[test]
fn archives_are_not_written_to_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    let good = t.path().join("good.tar");
    layer(&root, &list(&root), &good);

    let mut cmd = dockpack();
    cmd.arg("layer").arg("-C").arg(&root);
    let (o, seen) = on_terminal(cmd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not written to a terminal"), "{err}");
    assert_eq!(seen, 0);

    let mut cmd = dockpack();
    cmd.arg("image").arg(&good);
    let (o, seen) = on_terminal(cmd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not written to a terminal"), "{err}");
    assert_eq!(seen, 0);

    // --force writes it anyway; --oci-dir does not write stdout at all.
    let mut cmd = dockpack();
    cmd.args(["image", "--force"]).arg(&good);
    let (o, seen) = on_terminal(cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(seen > 1024, "{seen} bytes on the terminal");
    let mut cmd = dockpack();
    cmd.args(["image", "--oci-dir"])
        .arg(t.path().join("oci"))
        .arg(&good);
    let (o, _) = on_terminal(cmd);
    assert!(o.status.success(), "{}", stderr(&o));
}
