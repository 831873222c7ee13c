//! The README's examples run, as written: every code block that follows a
//! `<!-- example ... -->` line runs with `bash -e -o pipefail` (a failing
//! tool inside a pipeline fails the example too: a reader sees its error
//! even when the last command of the pipeline succeeds) in a scratch copy of the
//! cookbook in which `redo libs.layer` has built the hello trees and
//! layers (what the README says the examples start from), with this
//! build's tools on PATH. An example that fails fails this test, so the
//! README cannot drift from the tools.

use std::fs;
use std::path::Path;
use std::process::Command;

use pipeline_tests::support;

/// The marked blocks of `text`: (line number of the marker, the script).
/// A block is the fenced (```) or 4-space-indented code block after the
/// marker, blank lines between them allowed.
fn examples(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].trim_start().starts_with("<!-- example") {
            i += 1;
            continue;
        }
        let marker = i + 1;
        i += 1;
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        let mut script = String::new();
        if i < lines.len() && lines[i].starts_with("```") {
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                script.push_str(lines[i]);
                script.push('\n');
                i += 1;
            }
        } else {
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                script.push_str(lines[i].strip_prefix("    ").unwrap_or(""));
                script.push('\n');
                i += 1;
            }
        }
        assert!(
            !script.trim().is_empty(),
            "README.md:{marker}: an example marker with no code block after it"
        );
        found.push((marker, script));
    }
    found
}

#[test]
fn the_parser_finds_fenced_and_indented_blocks() {
    let text = "x\n<!-- example -->\n\n    a\n      b\n\n    c\nprose\n<!-- example: y -->\n```sh\nd\n```\n";
    assert_eq!(
        examples(text),
        vec![(2, "a\n  b\n\nc\n".to_string()), (9, "d\n".to_string())]
    );
}

#[test]
fn readme_examples_run_as_written() {
    if !support::is_root() {
        // The examples boot a VM, and Debian's kernel in /boot is
        // readable by root only.
        support::skip("the README's examples boot the /boot kernel, which only root can read here");
        return;
    }
    for prog in ["cc", "qemu-system-x86_64"] {
        if !testkit::have(prog) {
            support::skip(format!("the README's examples need {prog}"));
            return;
        }
    }
    let readme = support::workspace_root().join("README.md");
    let text = fs::read_to_string(&readme).unwrap_or_else(|e| panic!("README.md: {e}"));
    let blocks = examples(&text);
    // Marks removed by mistake would make this pass with nothing tested.
    assert!(
        blocks.len() >= 3,
        "only {} marked examples in README.md",
        blocks.len()
    );

    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    let path = support::path_with(&bins);
    let top = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = top.path().join("scripts");
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    support::copy_scripts(&dir).unwrap_or_else(|e| panic!("{e}"));
    let sh = |script: &str, what: &str, dir: &Path| {
        let out = Command::new("timeout")
            .args(["300", "bash", "-e", "-o", "pipefail", "-c", script])
            .current_dir(dir)
            .env("PATH", &path)
            .env_remove("MINREDO_RUN")
            .env_remove("MINREDO_DB")
            .env_remove("MAKEFLAGS")
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{script}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sh(
        "minredo libs.layer simple.layer",
        "the set-up (redo libs.layer)",
        &dir,
    );
    let mut hellos = 0;
    for (line, script) in &blocks {
        let out = sh(script, &format!("README.md:{line}"), &dir);
        hellos += out.matches("Hello, world!").count();
    }
    // The pipeline example runs hello in the chroot and in the VM; the
    // chrootrun one writes it to libs.runlocal.
    assert!(
        hellos >= 2,
        "the examples printed Hello, world! {hellos} times"
    );
    let local = fs::read_to_string(dir.join("libs.runlocal")).unwrap_or_default();
    assert_eq!(local, "Hello, world!\n", "chrootrun's example");
}
