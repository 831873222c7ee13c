//! Nothing outside `-C DIR` reaches a list, a layer or an initrd: the
//! attacks of "one symlink-proof resolver" against `fileids`, `mkinitrd`
//! and `dockpack layer` (symlinked parents, a parent swapped after it was
//! used, trailing `/` and `/.`, `..` and absolute names, a bad `-C`,
//! unsorted input, the drifted per-entry rules), then a bounded loop that
//! swaps a listed file and its directory for symlinks to the host while
//! the tools run. Each runs as root and, where root can drop to uid 65534
//! with `setpriv`, again as an ordinary user.

use reliability_tests::{bin, is_root, sha256_hex};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What lies outside the tree; none of it may show in any output.
const SECRET: &[u8] = b"HOST-SECRET-CONTENT-4b1d\n";
const HOST_TARGET: &str = "HOST-LINK-TARGET-9f3e";
/// The mode of the host's directories; no directory in a tree has it.
const HOST_DIR_MODE: u32 = 0o751;

const TOOLS: [&str; 3] = ["fileids", "mkinitrd", "dockpack layer"];

struct Fixture {
    _tmp: tempfile::TempDir,
    tree: PathBuf,
    host: PathBuf,
}

/// `tmp/host`: `secret`, `link -> HOST_TARGET`, `sub/` (mode 0751), the
/// same names as inside `tree/a`, so a read through a swapped parent
/// would find them. `tree`: `ok`, `a/{x,link,sub}`, `abs -> tmp/host`,
/// `rel -> ../host`, `r -> /root`.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let host = tmp.path().join("host");
    let tree = tmp.path().join("tree");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::set_permissions(host.join("sub"), fs::Permissions::from_mode(HOST_DIR_MODE)).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(HOST_DIR_MODE)).unwrap();
    fs::write(host.join("secret"), SECRET).unwrap();
    fs::write(host.join("x"), SECRET).unwrap();
    symlink(HOST_TARGET, host.join("link")).unwrap();
    fs::create_dir_all(tree.join("a/sub")).unwrap();
    fs::write(tree.join("ok"), b"inside\n").unwrap();
    fs::write(tree.join("a/x"), b"inside x\n").unwrap();
    symlink("inside-target", tree.join("a/link")).unwrap();
    symlink(&host, tree.join("abs")).unwrap();
    symlink("../host", tree.join("rel")).unwrap();
    symlink("/root", tree.join("r")).unwrap();
    Fixture {
        _tmp: tmp,
        tree,
        host,
    }
}

/// The host's traces in an output: its content, its link target, either
/// one's SHA-256 as a list digest, its directory mode as a list, newc or
/// tar writes it.
fn leak(out: &[u8]) -> Option<String> {
    let has = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
    let hex = |s: &str| s.as_bytes().to_vec();
    let marks: Vec<(String, Vec<u8>)> = vec![
        ("host content".into(), SECRET.to_vec()),
        ("host link target".into(), HOST_TARGET.as_bytes().to_vec()),
        ("host content digest".into(), hex(&sha256_hex(SECRET))),
        (
            "host link digest".into(),
            hex(&sha256_hex(HOST_TARGET.as_bytes())),
        ),
        (
            "host directory mode (list)".into(),
            format!("{:07o}-", 0o40000 | HOST_DIR_MODE).into_bytes(),
        ),
        (
            "host directory mode (newc)".into(),
            format!("{:08X}", 0o40000 | HOST_DIR_MODE).into_bytes(),
        ),
        (
            "host directory mode (tar)".into(),
            format!("{HOST_DIR_MODE:07o}\0").into_bytes(),
        ),
    ];
    marks
        .into_iter()
        .find(|(_, m)| has(m))
        .map(|(what, _)| what)
}

/// Whether root can run the tools as uid 65534 here.
fn can_drop() -> bool {
    testkit::runs_as_nobody(&bin("fileids"))
}

/// The users to run as: root, and nobody when root can drop to it.
fn users() -> Vec<bool> {
    if can_drop() {
        vec![false, true]
    } else {
        if is_root() {
            testkit::skip("as an ordinary user: setpriv cannot run the tools as uid 65534");
        }
        vec![false]
    }
}

fn command(tool: &str, dir: &Path, args: &[&str], as_nobody: bool) -> Command {
    let (exe, sub) = match tool {
        "dockpack layer" => (bin("dockpack"), Some("layer")),
        t => (bin(t), None),
    };
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(sub).arg("-C").arg(dir).args(args);
    cmd
}

/// Runs with `input` on stdin, bounded to 20 s.
fn run(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = wait_bounded(child, Duration::from_secs(20));
    let _ = feeder.join();
    out
}

fn wait_bounded(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if start.elapsed() > limit {
                // `pid` is our child, not yet reaped (we still wait for it),
                // so the number cannot have gone to another process.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watchdog.join();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The message after `tool: `.
fn message(tool: &str, out: &Output) -> String {
    let err = text(&out.stderr);
    let prefix = format!("{}: ", tool.split(' ').next().unwrap_or(tool));
    assert!(err.starts_with(&prefix), "{tool}: {err:?}");
    assert_eq!(err.lines().count(), 1, "{tool}: {err:?}");
    err[prefix.len()..].trim_end().to_string()
}

/// Each tool refuses `input` (exit 1, one line containing `want`) and
/// prints nothing of the host. Returns the messages.
fn refused(fx: &Fixture, tool: &str, input: &[u8], want: &str, as_nobody: bool) -> String {
    let out = run(command(tool, &fx.tree, &[], as_nobody), input);
    let who = if as_nobody { " as nobody" } else { "" };
    if let Some(what) = leak(&out.stdout) {
        panic!("{tool}{who}: {what} in the output for {:?}", text(input));
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "{tool}{who} on {:?}: {}",
        text(input),
        text(&out.stderr)
    );
    let msg = message(tool, &out);
    assert!(msg.contains(want), "{tool}{who}: {msg:?} lacks {want:?}");
    msg
}

fn line(name: &str, mode: &str, digest: &str) -> String {
    format!("{name} {mode}-0-0-{digest}\n")
}

/// `abs -> host` in the tree: `./abs/link` and `./abs/sub` are refused
/// by every tool (dockpack layer used to pack the host's link target and
/// directory mode, fileids to list them), as plain names and list lines.
#[test]
fn symlinked_parents_are_refused_by_every_tool() {
    let fx = fixture();
    for as_nobody in users() {
        for parent in ["abs", "rel"] {
            for tool in TOOLS {
                let input = format!("./{parent}\n./{parent}/link\n./{parent}/sub\n");
                let want = format!("\"./{parent}/link\": parent \"{parent}\" is a symlink");
                refused(&fx, tool, input.as_bytes(), &want, as_nobody);
                let input = format!("./{parent}/sub\n");
                refused(&fx, tool, input.as_bytes(), "is a symlink", as_nobody);
            }
            for tool in ["mkinitrd", "dockpack layer"] {
                let input = line(
                    &format!("./{parent}/link"),
                    "0120777",
                    &sha256_hex(HOST_TARGET.as_bytes()),
                ) + &line(&format!("./{parent}/sub"), "0040751", "0");
                refused(&fx, tool, input.as_bytes(), "is a symlink", as_nobody);
            }
        }
    }
}

/// `./abs/` and `./r/.` would be resolved through the symlink they name.
#[test]
fn trailing_slash_and_dot_are_refused_with_one_message() {
    let fx = fixture();
    for as_nobody in users() {
        for name in ["./abs/", "./r/.", "./a/", "./a/.", "./"] {
            let mut msgs = Vec::new();
            for tool in TOOLS {
                msgs.push(refused(
                    &fx,
                    tool,
                    format!("{name}\n").as_bytes(),
                    "ends in '/' or '/.'",
                    as_nobody,
                ));
            }
            for tool in ["mkinitrd", "dockpack layer"] {
                let input = line(name, "0040751", "0");
                msgs.push(refused(
                    &fx,
                    tool,
                    input.as_bytes(),
                    "ends in '/' or '/.'",
                    as_nobody,
                ));
            }
            assert!(msgs.windows(2).all(|w| w[0] == w[1]), "{msgs:#?}");
        }
    }
}

/// `..` and absolute names, which fileids used to follow to the host's
/// `/etc/shadow`: refused, with the same message by every tool.
#[test]
fn dot_dot_and_absolute_names_are_refused_with_one_message() {
    let fx = fixture();
    let secret = fx.host.join("secret").display().to_string();
    for as_nobody in users() {
        for (name, want) in [
            ("./r/../etc/shadow", "'..'"),
            ("./../../../../etc/shadow", "'..'"),
            ("./a/../../host/secret", "'..'"),
            ("../host/secret", "'..'"),
            ("/etc/shadow", "absolute name"),
            (secret.as_str(), "absolute name"),
        ] {
            let mut msgs = Vec::new();
            for tool in TOOLS {
                msgs.push(refused(
                    &fx,
                    tool,
                    format!("./ok\n{name}\n").as_bytes(),
                    want,
                    as_nobody,
                ));
            }
            assert!(msgs.windows(2).all(|w| w[0] == w[1]), "{msgs:#?}");
            assert!(msgs[0].starts_with("stdin line 2: "), "{}", msgs[0]);
        }
    }
}

/// The drifted rules: an empty record is an error in every tool, with
/// the same message.
#[test]
fn empty_records_are_one_error_everywhere() {
    let fx = fixture();
    let mut msgs = Vec::new();
    for tool in TOOLS {
        msgs.push(refused(&fx, tool, b".\n\n./ok\n", "empty name", false));
    }
    assert!(msgs.windows(2).all(|w| w[0] == w[1]), "{msgs:#?}");
    assert_eq!(msgs[0], "stdin line 2: \"\": empty name");
}

/// `-C DIR` missing or not a directory fails at start, naming DIR, even
/// on empty input.
#[test]
fn bad_dir_fails_at_start_naming_it() {
    let fx = fixture();
    let missing = fx.tree.join("nonexistent");
    let file = fx.tree.join("ok");
    for tool in TOOLS {
        for (dir, why) in [
            (&missing, "No such file or directory"),
            (&file, "Not a directory"),
        ] {
            for input in [&b""[..], b"./ok\n"] {
                let out = run(command(tool, dir, &[], false), input);
                assert_eq!(out.status.code(), Some(1), "{tool}: {}", text(&out.stderr));
                let msg = message(tool, &out);
                assert_eq!(
                    msg,
                    format!("-C \"{}\": {why}", dir.display()),
                    "{tool} {input:?}"
                );
                assert!(out.stdout.is_empty(), "{tool}");
            }
        }
    }
}

/// The packers check order and duplicates as `layerdiff` does, with the
/// same message, for list lines and plain names.
#[test]
fn packers_refuse_unsorted_input_as_layerdiff_does() {
    let fx = fixture();
    let ok = line("./ok", "0100644", &sha256_hex(b"inside\n"));
    let a = line("./a", "0040755", "0");
    for input in [ok.clone() + &a, a.clone() + &a] {
        let out = run(
            {
                let mut c = Command::new(bin("layerdiff"));
                c.args(["/dev/null", "-"]);
                c
            },
            input.as_bytes(),
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let want = message("layerdiff", &out);
        for tool in ["mkinitrd", "dockpack layer"] {
            let got = refused(&fx, tool, input.as_bytes(), "line 2", false);
            assert_eq!(got, want, "{tool}");
        }
    }
    for (input, want) in [
        (
            "./ok\n./a\n",
            "stdin: line 2: not sorted: \"./a\" after \"./ok\"",
        ),
        ("./a\n./a\n", "stdin: line 2: duplicate name \"./a\""),
        (
            "./a/x\n./a\n",
            "stdin: line 2: not sorted: \"./a\" after \"./a/x\"",
        ),
    ] {
        for tool in ["mkinitrd", "dockpack layer"] {
            refused(&fx, tool, input.as_bytes(), want, false);
        }
    }
}

/// The drifted rules: a pre-1970 mtime with `--keep-mtime` is an error
/// in both packers (dockpack layer used to record 0).
#[test]
fn pre_1970_mtime_with_keep_mtime_is_an_error_in_both_packers() {
    let fx = fixture();
    let st = Command::new("touch")
        .args(["-h", "-d", "@-100"])
        .arg(fx.tree.join("ok"))
        .status()
        .unwrap();
    assert!(st.success());
    for tool in ["mkinitrd", "dockpack layer"] {
        let out = run(command(tool, &fx.tree, &["--keep-mtime"], false), b"./ok\n");
        assert_eq!(out.status.code(), Some(1), "{tool}: {}", text(&out.stderr));
        assert_eq!(
            message(tool, &out),
            "stdin line 1: \"./ok\": mtime -100 is before 1970, which --keep-mtime cannot record"
        );
    }
}

/// The drifted rules: "the list says", "the fakeroot state says", and a
/// list and a state that disagree, worded the same by every tool.
#[test]
fn list_and_state_types_are_checked_once() {
    use std::os::unix::fs::MetadataExt;
    let fx = fixture();
    let m = fs::metadata(fx.tree.join("ok")).unwrap();
    let state = fx.tree.parent().unwrap().join("state");
    fs::write(
        &state,
        format!(
            "dev={:x},ino={},mode=20644,uid=0,gid=0,nlink=1,rdev=259\n",
            m.dev(),
            m.ino()
        ),
    )
    .unwrap();
    let state_arg = state.display().to_string();
    let digest = sha256_hex(b"inside\n");
    for tool in ["mkinitrd", "dockpack layer"] {
        let out = run(
            command(tool, &fx.tree, &[], false),
            line("./ok", "0040755", "0").as_bytes(),
        );
        assert_eq!(
            message(tool, &out),
            "stdin line 1: \"./ok\": the list says a directory, but it is a regular file on disk"
        );
        let out = run(
            command(tool, &fx.tree, &["--fakeroot", &state_arg], false),
            line("./ok", "0100644", &digest).as_bytes(),
        );
        assert_eq!(
            message(tool, &out),
            "stdin line 1: \"./ok\": the list says a regular file, \
             but the fakeroot state says a character device"
        );
    }
    fs::write(
        &state,
        format!(
            "dev={:x},ino={},mode=40755,uid=0,gid=0,nlink=1,rdev=0\n",
            m.dev(),
            m.ino()
        ),
    )
    .unwrap();
    for tool in TOOLS {
        let out = run(
            command(tool, &fx.tree, &["--fakeroot", &state_arg], false),
            b"./ok\n",
        );
        assert_eq!(
            message(tool, &out),
            "stdin line 1: \"./ok\": the fakeroot state says a directory, \
             but it is a regular file on disk"
        );
    }
}

/// With stdin a FIFO, `a` is swapped for a symlink to the host after
/// `./a/x` was taken: `./a/link` and `./a/sub` are then refused or come
/// from inside the tree (the directory that was `a`), never from the
/// host (mkinitrd and dockpack layer used to trust the parent they had
/// checked; fileids re-walked the path).
#[test]
fn parent_swapped_after_use_never_brings_in_the_host() {
    for as_nobody in users() {
        for tool in TOOLS {
            let fx = fixture();
            let mut cmd = command(tool, &fx.tree, &[], as_nobody);
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b".\n./a\n./a/x\n").unwrap();
            stdin.flush().unwrap();
            // Let the tool take those three and block on the next read.
            std::thread::sleep(Duration::from_millis(300));
            fs::rename(fx.tree.join("a"), fx.tree.join("a.old")).unwrap();
            symlink("../host", fx.tree.join("a")).unwrap();
            stdin.write_all(b"./a/link\n./a/sub\n").unwrap();
            drop(stdin);
            let out = wait_bounded(child, Duration::from_secs(20));
            if let Some(what) = leak(&out.stdout) {
                panic!(
                    "{tool}: {what} in the output after the swap; stderr {}",
                    text(&out.stderr)
                );
            }
            // fileids takes the link from the directory it had opened
            // as `a`, now `a.old`: inside the tree.
            if tool == "fileids" {
                use std::os::unix::fs::MetadataExt;
                let m = fs::symlink_metadata(fx.tree.join("a.old/link")).unwrap();
                let list = text(&out.stdout);
                let want = format!(
                    "./a/link 0120777-{}-{}-{}\n",
                    m.uid(),
                    m.gid(),
                    sha256_hex(b"inside-target")
                );
                assert!(
                    out.status.success() && list.contains(&want),
                    "{list}{}",
                    text(&out.stderr)
                );
            }
        }
    }
}

/// One more attack: DIR itself swapped for a symlink to the host while a
/// tool runs (stdin a FIFO). What follows is looked up in the directory
/// that was opened as DIR, where `secret` and `link` do not exist; the
/// host's never show (the tools used to re-walk DIR's path per name).
#[test]
fn dir_swapped_mid_run_stays_the_opened_directory() {
    for as_nobody in users() {
        for tool in TOOLS {
            let fx = fixture();
            let mut child = command(tool, &fx.tree, &[], as_nobody)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b".\n./a\n./a/x\n").unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            fs::rename(&fx.tree, fx.tree.with_extension("old")).unwrap();
            symlink(&fx.host, &fx.tree).unwrap();
            stdin.write_all(b"./link\n./secret\n./sub\n").unwrap();
            drop(stdin);
            let out = wait_bounded(child, Duration::from_secs(20));
            if let Some(what) = leak(&out.stdout) {
                panic!("{tool}: {what} in the output after DIR was swapped");
            }
            assert_eq!(out.status.code(), Some(1), "{tool}: {}", text(&out.stderr));
            assert_eq!(
                message(tool, &out),
                "stdin line 4: \"./link\": cannot stat: No such file or directory",
                "{tool}"
            );
        }
    }
}

/// `renameat2(RENAME_EXCHANGE)` of two names in one directory.
fn exchange(dir: &Path, a: &str, b: &str) {
    let _ = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &dir.join(a),
        nix::fcntl::AT_FDCWD,
        &dir.join(b),
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    );
}

/// 300 rounds (at most 30 s): while `fileids` lists `./d`, `./d/f` and
/// `./f` and both packers pack the list, another thread keeps exchanging
/// `d` with `dl -> ../host` and `f` with `fl -> ../host/secret`. No
/// round may put the host's content, digest or directory mode into the
/// list, the layer or the initrd; errors are fine.
#[test]
fn swap_loop_never_packs_the_host() {
    let fx = fixture();
    fs::create_dir(fx.tree.join("d")).unwrap();
    fs::write(fx.tree.join("d/f"), b"inside d/f\n").unwrap();
    fs::write(fx.tree.join("f"), b"inside f\n").unwrap();
    symlink("../host", fx.tree.join("dl")).unwrap();
    symlink("../host/secret", fx.tree.join("fl")).unwrap();
    fs::write(fx.host.join("f"), SECRET).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let tree = fx.tree.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                exchange(&tree, "d", "dl");
                exchange(&tree, "f", "fl");
                n += 1;
                if n.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
            n
        })
    };
    let users = users();
    let start = Instant::now();
    let (mut rounds, mut lists, mut packed) = (0, 0, 0);
    let names = b"./d\n./d/f\n./f\n";
    while rounds < 300 && start.elapsed() < Duration::from_secs(30) {
        let as_nobody = users.len() > 1 && rounds % 2 == 1;
        let out = run(command("fileids", &fx.tree, &[], as_nobody), names);
        if let Some(what) = leak(&out.stdout) {
            panic!("round {rounds}: fileids listed the {what}");
        }
        // Pack the list when there is one, else the plain names.
        let input = if out.status.success() {
            lists += 1;
            out.stdout
        } else {
            names.to_vec()
        };
        for tool in ["mkinitrd", "dockpack layer"] {
            let out = run(command(tool, &fx.tree, &[], as_nobody), &input);
            if let Some(what) = leak(&out.stdout) {
                panic!(
                    "round {rounds}: {tool} packed the {what} from {:?}",
                    text(&input)
                );
            }
            packed += u32::from(out.status.success());
        }
        rounds += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "{rounds} rounds in {:.1} s, {swaps} swaps: {lists} lists and {packed} archives made, \
         none with host data",
        start.elapsed().as_secs_f64()
    );
    assert!(rounds >= 50, "only {rounds} rounds in 30 s");
}
