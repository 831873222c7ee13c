//! What `elfdeps` says about its own usage: a file argument is refused
//! with the reason (paths are read on stdin), and names as `find .`
//! prints them are shown in messages as the in-tree paths they mean.

use std::fs;
use std::process::Command;

fn elfdeps() -> assert_cmd::Command {
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_elfdeps"))
}

#[test]
fn a_file_argument_says_paths_come_on_stdin() {
    let o = elfdeps().arg("/usr/bin/ls").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.starts_with(
            "elfdeps: unexpected argument \"/usr/bin/ls\": ELF paths are read on stdin"
        ) && err.lines().count() == 1,
        "{err}"
    );
}

/// A dynamically linked program of the host, copied into a tree without
/// its libraries: the missing-library message names it as the tree does.
#[test]
fn needed_by_names_the_in_tree_path_without_dot_components() {
    let Some(prog) = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| fs::metadata(p).is_ok())
    else {
        testkit::skip("no /usr/bin/true to copy");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("bin")).unwrap();
    fs::copy(prog, t.path().join("bin/hello")).unwrap();
    // As the README's example runs it: `cd simple && find . -type f |
    // elfdeps --root .`, and the other spellings of the same name.
    for (cwd_root, input) in [
        (true, "./bin/hello\n"),
        (false, "./bin/hello\n"),
        (false, "bin//./hello\n"),
        (false, "/./bin/hello\n"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_elfdeps"));
        if cwd_root {
            cmd.current_dir(t.path()).args(["--root", "."]);
        } else {
            cmd.arg("--root").arg(t.path());
        }
        let o = assert_cmd::Command::from_std(cmd)
            .write_stdin(input)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{input:?}: {err}");
        assert!(
            err.contains("(needed by \"/bin/hello\")") && !err.contains("/./"),
            "{input:?}: {err}"
        );
    }
}
