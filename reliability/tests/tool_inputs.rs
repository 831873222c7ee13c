//! Process-level fuzzing of the tools' stdin and arguments: no tool may
//! panic (exit 101) on any input; an error is one line and a defined exit
//! code (docs/DESIGN.md, "Exit codes and messages"). Deterministic mutations of the seed corpus go to each filter's
//! stdin, mutated layer tars to `dockpack image`, and random argument
//! vectors to every tool; the exit code must be a defined one and a
//! failure must say one line.

use reliability_tests::workspace_root;
use reliability_tests::{tool, Rng};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const TOKENS: &[&[u8]] = &[
    b" ",
    b"\n",
    b"\0",
    b"/",
    b"..",
    b"./",
    b"0100644-0-0-",
    b"0120777-0-0-",
    b"0040755-0-0-0",
    b"0020666-0-0-1:3",
    b"-whiteout",
    b".wh.",
    b"/etc/passwd",
    b"./a",
    b"\xff\xfe",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    testkit::mutate_bytes(rng, TOKENS, input);
}

/// Runs `cmd` with `stdin`; returns (code, stderr).
fn outcome(cmd: Command, stdin: &[u8]) -> (Option<i32>, String) {
    let out = testkit::run(cmd, stdin);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Why an outcome is wrong: an undefined exit code, a failure that is not
/// one line, a panic.
fn wrong(code: Option<i32>, stderr: &str) -> Option<String> {
    let defined = matches!(code, Some(0..=2));
    let one_line = code == Some(0) || stderr.lines().count() == 1;
    (!defined || !one_line || stderr.contains("panicked"))
        .then(|| format!("exit {code:?}, stderr {stderr:?}"))
}

/// A small tree matching the list seeds: ./a, ./d, ./d/f, ./l -> d/f.
fn tree(dir: &Path) {
    fs::write(dir.join("a"), b"a\n").unwrap();
    fs::create_dir(dir.join("d")).unwrap();
    fs::write(dir.join("d/f"), b"f\n").unwrap();
    std::os::unix::fs::symlink("d/f", dir.join("l")).unwrap();
}

const RUNS: usize = 150;

#[test]
fn filters_survive_mutated_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    fs::create_dir(&root).unwrap();
    tree(&root);
    let list = Command::new(tool("fileids").get_program())
        .arg("-C")
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b".\n./a\n./d\n./d/f\n./l\n")?;
            c.wait_with_output()
        })
        .unwrap()
        .stdout;
    let seeds: Vec<Vec<u8>> = vec![
        list.clone(),
        b".\n./a\n./d\n./d/f\n./l\n".to_vec(),
        fs::read(workspace_root().join("fuzz/corpus/list/sorted")).unwrap(),
    ];
    type MakeCommand<'a> = Box<dyn Fn() -> Command + 'a>;
    let makers: Vec<(&str, MakeCommand)> = vec![
        (
            "fileids",
            Box::new(|| {
                let mut c = tool("fileids");
                c.arg("-C").arg(&root);
                c
            }),
        ),
        (
            "layerdiff --whiteouts",
            Box::new(|| {
                let mut c = tool("layerdiff");
                c.args(["--whiteouts", "/dev/null", "-"]);
                c
            }),
        ),
        (
            "mkinitrd",
            Box::new(|| {
                let mut c = tool("mkinitrd");
                c.arg("-C").arg(&root);
                c
            }),
        ),
        (
            "dockpack layer",
            Box::new(|| {
                let mut c = tool("dockpack");
                c.args(["layer", "-C"]).arg(&root);
                c
            }),
        ),
        (
            "elfdeps --root",
            Box::new(|| {
                let mut c = tool("elfdeps");
                c.arg("--root").arg(&root);
                c
            }),
        ),
    ];
    for (label, make) in &makers {
        let mut codes = [0usize; 3];
        let seed = 0x5EED_0000 ^ label.len() as u64;
        testkit::mutation_loop(seed, &seeds, RUNS, mutate, |input| {
            let (code, stderr) = outcome(make(), input);
            if let Some(c @ 0..=2) = code {
                codes[c as usize] += 1;
            }
            wrong(code, &stderr).map(|why| format!("{label}: {why}"))
        });
        eprintln!("{label}: {RUNS} mutated stdins, exit 0/1/2: {codes:?}");
    }
}

#[test]
fn dockpack_image_survives_mutated_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = fs::read(workspace_root().join("fuzz/corpus/tar/layer.tar")).unwrap();
    let layer = tmp.path().join("layer.tar");
    let head_mutated = |rng: &mut Rng, input: &mut Vec<u8>| {
        // Keep the mutations where the headers are: the first 2 KiB.
        let end = 2048.min(input.len());
        let mut head = input[..end].to_vec();
        mutate(rng, &mut head);
        input.splice(..end, head);
    };
    testkit::mutation_loop(0xD0C_C0DE, &[seed], RUNS, head_mutated, |input| {
        fs::write(&layer, input).unwrap();
        let mut cmd = tool("dockpack");
        cmd.args(["image", "--tag", "f:z"]).arg(&layer);
        let (code, stderr) = outcome(cmd, b"");
        wrong(code, &stderr).map(|why| format!("dockpack image: {why}"))
    });
}

#[test]
fn tools_survive_random_arguments() {
    const ARGS: &[&str] = &[
        "-C",
        "/nonexistent",
        "/",
        "-0",
        "-z",
        "--owner",
        "0:0",
        "x:y",
        "4294967296:0",
        "--fakeroot",
        "/dev/null",
        "--gzip",
        "--add",
        "a=b",
        "=",
        "--keep-mtime",
        "-j",
        "0",
        "-1",
        "99999999999999999999",
        "--whiteouts",
        "-",
        "--root",
        "--allow-missing",
        "layer",
        "image",
        "--tag",
        "UPPER:x",
        "a:b:c",
        "--cmd",
        "--env",
        "K",
        "--arch",
        "mips",
        "--iidfile",
        "/nonexistent/iid",
        "--oci-dir",
        "--label",
        "--",
        "\u{ff}",
        "",
        "--help-me",
        "-h",
    ];
    let mut rng = Rng(0xA11_A265);
    let mut bad = Vec::new();
    let mut runs = 0;
    for name in ["fileids", "layerdiff", "mkinitrd", "dockpack", "elfdeps"] {
        for _ in 0..RUNS {
            let n = rng.below(5);
            let args: Vec<&str> = (0..n).map(|_| ARGS[rng.below(ARGS.len())]).collect();
            let mut cmd = tool(name);
            cmd.args(&args);
            let (code, stderr) = outcome(cmd, b"./a\n");
            runs += 1;
            // Usage errors may print clap's usage lines after the first; -h prints help.
            let defined = matches!(code, Some(0..=2));
            if !defined || stderr.contains("panicked") {
                bad.push(format!("{name} {args:?}: exit {code:?}, stderr {stderr:?}"));
            }
        }
    }
    eprintln!("{runs} random argument vectors");
    assert!(bad.is_empty(), "{bad:#?}");
}
