//! The cookbook built in parallel: concurrent runs of the same pipeline
//! under `redo -j`/`make -j` in one directory are safe because each tool
//! writes only where it is told to. `scripts/` is copied into fresh directories and
//! `all` is built there:
//!
//! 1. by `make` one job at a time, then by `make -j4` and `make -j8`;
//! 2. by `minredo` one job at a time, then by `minredo -j4`;
//!
//! each build in its own copy. (make and redo are compared with their own
//! sequential build: make leaves stamp files such as `simple.fs` that redo
//! does not need.) Each parallel build must leave a directory identical to
//! its reference, byte for byte and file for file (trees, lists, layers,
//! initrds, images, ids, run outputs), apart from the build tool's own
//! state (`.redo`, `.make-shims`): a tool that wrote a temporary file
//! beside its output, or two jobs that shared one, shows up as a stray or
//! a differing file. Then a second parallel build must change nothing.
//!
//! The Debian container (a debootstrap of about 200 MB) is left out of a
//! plain `cargo test` (`NO_DEBIAN=1`): it needs the network and adds about
//! 70 s. `PIPELINE_TESTS_PARALLEL_DEBIAN=1` puts it in; `scripts/test.sh`
//! (and so CI) sets it. Then the reference
//! runs debootstrap once and the parallel copies start from its trees, as
//! `cookbook.rs` does for make (two debootstraps never give the same
//! bytes: logs and caches hold times); minredo takes the two trees as
//! sources (their `.do` files removed), since it has no record of them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use pipeline_tests::support;

/// The build tools' own state, not products.
const TOOL_STATE: &[&str] = &[".redo", ".make-shims"];

/// What a product may not be called: the temporary names of make-do.sh,
/// minredo, the .do scripts and dockpack's `--oci-dir`.
const TEMP_MARKS: &[&str] = &[
    "make-tmp",
    "make-out",
    "redo-tmp",
    "redo-out",
    ".tmp",
    ".layout.tmp",
];

/// Runs `prog args` in `dir` with our binaries first on PATH and nothing
/// of an outer make or redo in the environment; fails the test if it
/// fails. Returns the wall time.
fn run(path: &OsString, dir: &Path, prog: &str, args: &[&str], extra: &[(&str, &str)]) -> f64 {
    let start = Instant::now();
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("STRICT", "1")
        .env_remove("DOCKER_HOST")
        .env_remove("ENGINE")
        .env_remove("MINREDO_RUN")
        .env_remove("MINREDO_DB")
        .env_remove("MINREDO_JOBSERVER")
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("MFLAGS");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{prog}: cannot run: {e}"));
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    eprintln!(
        "== {prog} {} in {} ({secs:.1} s)\n{}",
        args.join(" "),
        dir.display(),
        lines[lines.len().saturating_sub(12)..].join("\n")
    );
    assert!(
        out.status.success(),
        "{prog} {args:?} in {} failed: {}\n{stderr}",
        dir.display(),
        out.status
    );
    secs
}

/// One entry of a tree, as far as a product's identity goes.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, size: u64 },
    Link { target: PathBuf },
    Device { mode: u32, rdev: u64 },
    Other { mode: u32 },
}

/// Every entry under `root` by relative path, the build tools' state left
/// out. Streams the directory walk; file contents are compared later.
fn entries(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let list = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in list {
            let e = e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let name = rel.join(e.file_name());
            if rel.as_os_str().is_empty() && TOOL_STATE.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            let m = fs::symlink_metadata(e.path())
                .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            let ft = m.file_type();
            let mode = m.mode() & 0o7777;
            let node = if ft.is_dir() {
                stack.push(name.clone());
                Node::Dir { mode }
            } else if ft.is_file() {
                Node::File {
                    mode,
                    size: m.size(),
                }
            } else if ft.is_symlink() {
                Node::Link {
                    target: fs::read_link(e.path()).unwrap_or_default(),
                }
            } else if ft.is_char_device() || ft.is_block_device() {
                Node::Device {
                    mode: m.mode(),
                    rdev: m.rdev(),
                }
            } else {
                Node::Other { mode: m.mode() }
            };
            out.insert(name, node);
        }
    }
    out
}

/// Whether two files hold the same bytes, read in 64 KiB pieces.
fn same_bytes(a: &Path, b: &Path) -> bool {
    let open = |p: &Path| fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    n
}

/// The differences between the tree at `got` and the reference (at most
/// 20 of them, to keep a failure readable).
fn differences(reference: &Path, got: &Path, ignore: &[&str]) -> Vec<String> {
    let skip = |p: &Path| ignore.iter().any(|i| p == Path::new(i));
    let want = entries(reference);
    let have = entries(got);
    let mut diffs = Vec::new();
    for (p, n) in &want {
        if skip(p) {
            continue;
        }
        match have.get(p) {
            None => diffs.push(format!("missing: {}", p.display())),
            Some(h) if h != n => diffs.push(format!("{}: {h:?}, want {n:?}", p.display())),
            Some(Node::File { .. }) if !same_bytes(&reference.join(p), &got.join(p)) => {
                diffs.push(format!("{}: other bytes", p.display()))
            }
            Some(_) => {}
        }
    }
    for p in have.keys() {
        if !want.contains_key(p) && !skip(p) {
            diffs.push(format!("stray: {}", p.display()));
        }
    }
    diffs.truncate(20);
    diffs
}

/// Size, mtime and inode of every entry: a rebuild changes one of them.
fn stamps(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64, u64)> {
    entries(root)
        .into_keys()
        .map(|p| {
            let m = fs::symlink_metadata(root.join(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, (m.size(), m.mtime(), m.mtime_nsec(), m.ino()))
        })
        .collect()
}

fn changed(
    before: &BTreeMap<PathBuf, (u64, i64, i64, u64)>,
    after: &BTreeMap<PathBuf, (u64, i64, i64, u64)>,
) -> Vec<PathBuf> {
    let mut c: Vec<PathBuf> = after
        .iter()
        .filter(|(p, s)| before.get(*p) != Some(s))
        .map(|(p, _)| p.clone())
        .collect();
    c.extend(before.keys().filter(|p| !after.contains_key(*p)).cloned());
    c
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap_or_else(|e| panic!("cp: {e}"));
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// Gives `dir` the reference's Debian download and install, so the
/// parallel build starts where the reference's debootstrap ended. For make:
/// the trees and stamp files newer than their inputs. For minredo, which
/// has no record of building them: the trees as sources, their `.do`
/// files removed.
fn seed_debian(reference: &Path, dir: &Path, for_redo: bool) {
    for d in ["debdownload", "debootstrap"] {
        copy_tree(&reference.join(d), dir);
    }
    for s in ["debdownload.fs", "debootstrap.fs"] {
        if for_redo {
            let script = dir.join(format!("{s}.do"));
            fs::remove_file(&script).unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(dir.join(s), "").unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The two tests share podman's image store and the two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Builds `all` with `driver` one job at a time, then with each of
/// `parallel` in its own copy, and compares (see the module comment).
fn sequential_then_parallel(driver: &str, parallel: &[&[&str]]) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    let path = support::path_with(&bins);
    let is_redo = driver == "minredo";
    let minredo = bins.join("minredo");
    let prog = if is_redo {
        minredo.to_str().unwrap_or("minredo")
    } else {
        driver
    };
    // make's default goal is all; redo is told.
    let target: &[&str] = if is_redo { &["all"] } else { &[] };
    let debian = std::env::var_os("PIPELINE_TESTS_PARALLEL_DEBIAN").is_some();
    // The Debian VM is checked by cookbook.rs; it needs ~3x its 120 MB
    // initrd in RAM, several times over under -j.
    let mut env: Vec<(&str, &str)> = vec![("NO_DEBIAN_KVM", "1")];
    if !debian {
        env.push(("NO_DEBIAN", "1"));
    }
    let top = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = |name: &str| {
        let d = top.path().join(name);
        fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
        support::copy_scripts(&d).unwrap_or_else(|e| panic!("{e}"));
        d
    };

    // 1. The reference: one job at a time.
    let reference = dir("sequential");
    let t_seq = run(&path, &reference, prog, target, &env);
    let products = entries(&reference);
    for want in [
        "simple.list",
        "libs.list",
        "simple.layer",
        "libs.layer",
        "libs.initrd",
        "simple.image",
        "simple.iid",
        "simple.image.gz",
        "libs.list.sha256",
        "libs.runlocal",
        "libs.runkvm",
        "simple.rundocker",
    ] {
        assert!(
            products.contains_key(Path::new(want)),
            "the sequential {driver} made no {want}"
        );
    }
    let temps: Vec<&PathBuf> = products
        .keys()
        .filter(|p| {
            let top_level = p.components().count() == 1;
            top_level && TEMP_MARKS.iter().any(|m| p.to_string_lossy().contains(m))
        })
        .collect();
    assert!(
        temps.is_empty(),
        "temporary files left by the sequential {driver}: {temps:?}"
    );

    // 2. Parallel builds, each compared with the reference.
    let mut times = vec![(driver.to_string(), t_seq)];
    for jobs in parallel {
        let label = format!("{driver} {}", jobs.join(" "));
        let d = dir(&label.replace(' ', ""));
        let args: Vec<&str> = jobs.iter().chain(target).copied().collect();
        // minredo's copy lacks the two .do files and has the two stamp
        // files of the sources that stand in for them.
        let mut ignore: Vec<&str> = Vec::new();
        if debian {
            seed_debian(&reference, &d, is_redo);
            if is_redo {
                ignore.extend([
                    "debdownload.fs.do",
                    "debootstrap.fs.do",
                    "debdownload.fs",
                    "debootstrap.fs",
                ]);
            }
        }
        let secs = run(&path, &d, prog, &args, &env);
        times.push((label.clone(), secs));
        let diffs = differences(&reference, &d, &ignore);
        assert!(
            diffs.is_empty(),
            "{label} built something else than the sequential {driver}:\n{}",
            diffs.join("\n")
        );
        // 3. Built again in parallel: nothing changes.
        let before = stamps(&d);
        std::thread::sleep(std::time::Duration::from_millis(20));
        run(&path, &d, prog, &args, &env);
        let mut again = changed(&before, &stamps(&d));
        if is_redo {
            // NAME.setting is made again on every run (redo-always in
            // default.setting.do); what depends on it is not (redo-stamp),
            // as the rest of this check shows. make leaves it untouched.
            again.retain(|p| p.extension().is_none_or(|e| e != "setting"));
        }
        assert!(again.is_empty(), "a second {label} changed {again:?}");
        if is_redo {
            // The runs removed their jobserver FIFOs.
            let db: Vec<String> = fs::read_dir(d.join(".redo"))
                .unwrap_or_else(|e| panic!("{e}"))
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!db.iter().any(|n| n.starts_with("jobserver")), "{db:?}");
        }
    }
    let summary: Vec<String> = times.iter().map(|(l, s)| format!("{l} {s:.1} s")).collect();
    eprintln!(
        "cookbook{}: {}; every parallel build identical to the sequential one, \
         no stray file, a second run changed nothing",
        if debian { " with Debian" } else { "" },
        summary.join(", ")
    );
}

#[test]
fn cookbook_under_make_j4_and_j8_matches_sequential_make() {
    if !support::is_root() {
        support::skip("the VM, podman and docker runs need root on these machines");
        return;
    }
    sequential_then_parallel("make", &[&["-j4"], &["-j8"]]);
}

// Found scripts/default.load.do asking for NAME.image and its side
// product NAME.iid in one redo-ifchange, which redo -j checks in parallel.
#[test]
fn cookbook_under_minredo_j4_matches_sequential_minredo() {
    if !support::is_root() {
        support::skip("the VM, podman and docker runs need root on these machines");
        return;
    }
    sequential_then_parallel("minredo", &[&["-j4"]]);
}

// Found scripts/make-do.sh writing its shims in place while other jobs
// ran them ("Text file busy"); it now renames a finished directory in.
#[test]
fn make_j_in_a_fresh_directory_starts_its_first_jobs_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("make").arg("--version").output().is_err() {
        support::skip("make is not installed");
        return;
    }
    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    let path = support::path_with(&bins);
    // Six products that need nothing built first, so make starts all six
    // jobs at once, each a make-do.sh that finds no shims yet.
    let sources = [
        "hello.c",
        "need.sh",
        "owner.sh",
        "probe.sh",
        "check.sh",
        "docker.sh",
    ];
    let goals: Vec<String> = sources.iter().map(|s| format!("{s}.sha256")).collect();
    let mut args = vec!["-j6"];
    args.extend(goals.iter().map(String::as_str));
    let top = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for round in 0..20 {
        let d = top.path().join(format!("round{round}"));
        fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
        support::copy_scripts(&d).unwrap_or_else(|e| panic!("{e}"));
        run(&path, &d, "make", &args, &[]);
        for g in &goals {
            let sum = fs::read_to_string(d.join(g)).unwrap_or_else(|e| panic!("{g}: {e}"));
            assert_eq!(sum.trim().len(), 64, "round {round}: {g}: {sum:?}");
        }
        let stray: Vec<String> = fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".make-shims."))
            .collect();
        assert!(stray.is_empty(), "round {round}: {stray:?}");
    }
}
