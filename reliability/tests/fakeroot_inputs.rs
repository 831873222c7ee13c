//! Fuzzing through `--fakeroot STATE` on the command line (a state file
//! is untrusted input like any other; the parser alone is fuzzed in
//! process by `mutate.rs`). A real `fakeroot -s` state file is made for a small tree
//! holding every file type, then mutated, deterministically, at three
//! levels: bytes (as a fuzzer does), fields (a value replaced by one that
//! matters: another real inode, a mode of another file type, a number
//! past 32 or 64 bits) and lines (dropped, repeated, or made up for an
//! inode fakeroot never recorded). Field and line mutations keep the
//! device and inode numbers real, so the tools apply the state to the
//! tree's files: a directory the state calls a regular file, a FIFO it
//! calls a regular file (opening it would block), a file it calls a
//! device. Each state goes to `fileids`, `mkinitrd` and `dockpack layer`
//! (plain names), and the list `fileids` made from it to the two packers.
//!
//! Every run must end within 20 s, with 0, or with 1 or 2 and one line on
//! stderr; never a panic (101), a signal, or a hang. Outputs are read and
//! thrown away, at most 16 MiB a run: nothing is written to disk but the
//! states (a few hundred bytes each).

use reliability_tests::{skip, tool, Rng};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Mutated states; each is run through five tool invocations.
const STATES: usize = 200;
/// A run that takes longer has hung.
const LIMIT: Duration = Duration::from_secs(20);
/// Output read from a run before it is called unbounded.
const MAX_OUTPUT: u64 = 16 << 20;

/// Modes with every file type bit pattern the kernel knows, and some it
/// does not, with odd permission bits.
const MODES: &[&str] = &[
    "100644",
    "104755",
    "40755",
    "41777",
    "120777",
    "20644",
    "60644",
    "10644",
    "140755",
    "0",
    "7777",
    "170000",
    "177777",
    "30644",
    "200000",
    "37777777777",
    "40000000000",
    "-1",
    "",
];

/// Numbers around the limits of the fields' types.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "65534",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "-1",
    "+1",
    "0x10",
    "1e3",
    "",
    " 1",
];

const KEYS: &[&str] = &["dev", "ino", "mode", "uid", "gid", "nlink", "rdev", "x"];

/// The tree and its real inodes (as state-file values).
struct Tree {
    dev_hex: String,
    inodes: Vec<String>,
    names: Vec<u8>,
}

/// A tree with a regular file (setuid, odd owner), a directory, a
/// character and a block device, a symlink, a FIFO and a hard link, made
/// under `fakeroot -s STATE` as a user's build would make it.
fn make_tree(root: &Path, state: &Path) -> Result<Tree, String> {
    fs::create_dir(root).map_err(|e| e.to_string())?;
    let script = "cd \"$1\" && echo hello >a && chown 1234:5678 a && chmod 4755 a && \
                  mkdir d && chown 42:43 d && mknod d/null c 1 3 && mknod blk b 8 1 && \
                  ln -s a l && chown -h 7:8 l && mkfifo p && echo x >d/f && ln d/f hard";
    let out = Command::new("fakeroot")
        .arg("-s")
        .arg(state)
        .args(["sh", "-ec", script, "sh"])
        .arg(root)
        .output()
        .map_err(|e| format!("fakeroot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fakeroot -s failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let names = [
        ".", "./a", "./blk", "./d", "./d/f", "./d/null", "./hard", "./l", "./p",
    ];
    let mut inodes = Vec::new();
    for n in names {
        let m = fs::symlink_metadata(root.join(n)).map_err(|e| format!("{n}: {e}"))?;
        inodes.push(m.ino().to_string());
    }
    let dev = fs::symlink_metadata(root).map_err(|e| e.to_string())?.dev();
    let mut list = Vec::new();
    for n in names {
        list.extend_from_slice(n.as_bytes());
        list.push(b'\n');
    }
    Ok(Tree {
        dev_hex: format!("{dev:x}"),
        inodes,
        names: list,
    })
}

/// One state-file line for `ino` with the given mode.
fn line(tree: &Tree, ino: &str, mode: &str, rng: &mut Rng) -> String {
    format!(
        "dev={},ino={ino},mode={mode},uid={},gid={},nlink=1,rdev={}",
        tree.dev_hex,
        rng.pick(&["0", "1000", "4294967295"]),
        rng.pick(&["0", "42", "4294967295"]),
        rng.pick(&["0", "259", "2049", "18446744073709551615"]),
    )
}

/// Modes and numbers the parser accepts: half of the field mutations use
/// only these, so that most states parse and reach the tools' use of them.
const VALID_MODES: &[&str] = &[
    "100644", "104755", "40755", "41777", "120777", "20644", "60644", "10644", "140755", "100000",
    "7777", "177777",
];
const VALID_NUMBERS: &[&str] = &["0", "1", "42", "65534", "4294967295"];

/// Replaces the value of one `key=value` field of `l`.
fn mutate_field(l: &str, tree: &Tree, rng: &mut Rng) -> String {
    let mut fields: Vec<String> = l.split(',').map(str::to_string).collect();
    if fields.is_empty() {
        return l.to_string();
    }
    let i = rng.below(fields.len());
    let key = fields[i].split('=').next().unwrap_or("").to_string();
    let inodes: Vec<&str> = tree.inodes.iter().map(String::as_str).collect();
    let valid = rng.below(2) == 0;
    let value = match key.as_str() {
        "ino" => rng.pick(&inodes).to_string(),
        "mode" if valid => rng.pick(VALID_MODES).to_string(),
        "mode" => rng.pick(MODES).to_string(),
        "dev" if valid => tree.dev_hex.clone(),
        "dev" => rng
            .pick(&["0", "ffffffffffffffff", "10000000000000000", "zz"])
            .to_string(),
        "rdev" if valid => rng.pick(&["0", "259", "18446744073709551615"]).to_string(),
        _ if valid => rng.pick(VALID_NUMBERS).to_string(),
        _ => rng.pick(NUMBERS).to_string(),
    };
    match rng.below(if valid { 12 } else { 6 }) {
        // Drop the field, or repeat it with another value.
        0 => {
            fields.remove(i);
        }
        1 => fields.push(format!("{key}={value}")),
        // Another key, or no `=`.
        2 => fields[i] = format!("{}={value}", rng.pick(KEYS)),
        3 if rng.below(3) == 0 => fields[i] = key,
        _ => fields[i] = format!("{key}={value}"),
    }
    fields.join(",")
}

/// A byte-level mutation, as a fuzzer makes them.
fn mutate_bytes(data: &mut Vec<u8>, rng: &mut Rng) {
    const TOKENS: &[&[u8]] = &[
        b",", b"=", b"\n", b"\0", b"dev=", b"ino=", b"mode=", b"rdev=", b"\xff", b" ", b"\r",
    ];
    let len = data.len();
    match rng.below(5) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(len + 1);
            let t = TOKENS[rng.below(TOKENS.len())];
            data.splice(i..i, t.iter().copied());
        }
        2 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(32)).min(len);
            data.drain(a..b);
        }
        3 if len > 0 => data.truncate(rng.below(len)),
        _ => {
            // A long line: the reader's bound on a record.
            let i = rng.below(len + 1);
            data.splice(i..i, std::iter::repeat_n(b'7', 1 + rng.below(70_000)));
        }
    }
}

/// One mutated state made from the real one.
fn mutate(real: &str, tree: &Tree, rng: &mut Rng) -> Vec<u8> {
    let mut lines: Vec<String> = real.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0..=3 if !lines.is_empty() => {
                let i = rng.below(lines.len());
                lines[i] = mutate_field(&lines[i], tree, rng);
            }
            4 => {
                // A line for any real inode (FIFO, directory, hard link
                // ...) with a mode of any type.
                let ino = tree.inodes[rng.below(tree.inodes.len())].clone();
                let mode = rng.pick(MODES);
                let l = line(tree, &ino, mode, rng);
                let at = rng.below(lines.len() + 1);
                lines.insert(at, l);
            }
            5 if !lines.is_empty() => {
                let i = rng.below(lines.len());
                lines.remove(i);
            }
            6 if !lines.is_empty() => {
                let i = rng.below(lines.len());
                let l = lines[i].clone();
                lines.push(l);
            }
            _ => {}
        }
    }
    let mut data = lines.join("\n").into_bytes();
    if rng.below(4) != 0 {
        data.push(b'\n');
    }
    if rng.below(5) == 0 {
        mutate_bytes(&mut data, rng);
    }
    data
}

/// How a run ended: exit code (None: killed by a signal, or hung), the
/// stdout it wrote (up to `keep` bytes) and its stderr.
type Ran = testkit::Bounded;

/// Runs `cmd` with `stdin`, killing it after LIMIT or MAX_OUTPUT.
fn run(cmd: Command, stdin: &[u8], keep: usize) -> Ran {
    testkit::run_bounded(cmd, stdin, LIMIT, MAX_OUTPUT, keep)
}

/// Appends a description of `r` to `bad` unless it ended as it must.
fn check(label: &str, r: &Ran, state: &[u8], bad: &mut Vec<String>) {
    let defined = matches!(r.code, Some(0..=2));
    let one_line = r.code == Some(0) || r.stderr.lines().count() == 1;
    let bounded = r.out_len <= MAX_OUTPUT;
    if r.hung || !defined || !one_line || !bounded || r.stderr.contains("panicked") {
        bad.push(format!(
            "{label}: exit {:?}{}, {} bytes out, stderr {:?}, state {:?}",
            r.code,
            if r.hung { " (hung, killed)" } else { "" },
            r.out_len,
            r.stderr,
            String::from_utf8_lossy(&state[..state.len().min(600)])
        ));
    }
}

#[test]
fn tools_survive_mutated_fakeroot_states() {
    if Command::new("fakeroot").arg("true").output().is_err() {
        skip("fakeroot is not installed (apt-get install fakeroot)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = tmp.path().join("t");
    let real_state = tmp.path().join("real.state");
    let tree = make_tree(&root, &real_state).unwrap_or_else(|e| panic!("{e}"));
    let real = fs::read_to_string(&real_state).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        real.lines().count() >= 4,
        "fakeroot recorded too little: {real:?}"
    );

    // The real state must work: the control for everything below.
    let ids = |state: &Path, owner: bool| {
        let mut c = tool("fileids");
        c.arg("-C").arg(&root).arg("--fakeroot").arg(state);
        if owner {
            c.args(["--owner", "0:0"]);
        }
        c
    };
    let control = run(ids(&real_state, false), &tree.names, 1 << 20);
    assert_eq!(control.code, Some(0), "{}", control.stderr);
    let listed = String::from_utf8_lossy(&control.stdout).into_owned();
    assert!(
        listed.contains("./a 0104755-1234-5678-") && listed.contains("./d/null 0020644-0-0-1:3"),
        "fileids did not apply the real state: {listed}"
    );

    let state_path = tmp.path().join("mutated.state");
    let mut rng = Rng(0xFA4E_2007);
    let mut bad = Vec::new();
    let mut codes = [[0usize; 3]; 5];
    let start = Instant::now();
    for _ in 0..STATES {
        let state = mutate(&real, &tree, &mut rng);
        fs::write(&state_path, &state).unwrap_or_else(|e| panic!("{e}"));
        let owner = rng.below(4) == 0;
        let with = |name: &str, sub: Option<&str>| {
            let mut c = tool(name);
            if let Some(s) = sub {
                c.arg(s);
            }
            c.arg("-C").arg(&root).arg("--fakeroot").arg(&state_path);
            if owner {
                c.args(["--owner", "0:0"]);
            }
            c
        };
        let list = run(ids(&state_path, owner), &tree.names, 1 << 20);
        let mut runs = vec![
            ("fileids", list),
            (
                "mkinitrd (names)",
                run(with("mkinitrd", None), &tree.names, 0),
            ),
            (
                "dockpack layer (names)",
                run(with("dockpack", Some("layer")), &tree.names, 0),
            ),
        ];
        if runs[0].1.code == Some(0) {
            // The list the mutated state gave, through both packers.
            let lines = runs[0].1.stdout.clone();
            runs.push(("mkinitrd (list)", run(with("mkinitrd", None), &lines, 0)));
            runs.push((
                "dockpack layer (list)",
                run(with("dockpack", Some("layer")), &lines, 0),
            ));
        }
        for (i, (label, r)) in runs.iter().enumerate() {
            if let Some(c @ 0..=2) = r.code {
                codes[i][c as usize] += 1;
            }
            check(label, r, &state, &mut bad);
        }
    }
    for (i, label) in [
        "fileids",
        "mkinitrd (names)",
        "dockpack layer (names)",
        "mkinitrd (list)",
        "dockpack layer (list)",
    ]
    .iter()
    .enumerate()
    {
        eprintln!("{label}: exit 0/1/2 {:?}", codes[i]);
    }
    eprintln!(
        "{STATES} mutated fakeroot states through the tools in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        bad.is_empty(),
        "{} bad runs:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
