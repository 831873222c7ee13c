//! `dockpack image` against inputs an attacker picks: layer tars whose
//! size fields overflow, whose members climb out of the root, layers
//! that are FIFOs or `/dev/zero`, symlinks at the named outputs, and a
//! Cmd path with many `..` on a large layer. Each case ends within its
//! bound with one line naming the culprit, exit 1, nothing written
//! through a link and no temporary file left.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockpack::tarfmt::{self, Kind, Member};
use testkit::{is_root, skip};

/// The binary under test, as a plain `Command` (spawned and killed here).
fn dockpack() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dockpack"));
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

fn member(name: &[u8], kind: Kind, size: u64, link: &[u8]) -> Vec<u8> {
    let m = Member {
        name,
        kind,
        mode: if kind == Kind::Directory {
            0o755
        } else {
            0o644
        },
        uid: 0,
        gid: 0,
        size,
        mtime: 0,
        link,
        major: 0,
        minor: 0,
    };
    let mut out = Vec::new();
    tarfmt::write_header(&mut out, &m).unwrap();
    out
}

/// A tar of `members` (header bytes, with any data already appended),
/// then the end blocks.
fn tar(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = members.concat();
    tarfmt::write_end(&mut out).unwrap();
    out
}

/// Runs `cmd` with a deadline: killed if it overruns, which fails the
/// test. stdout goes to `out` (a file) so that what was written is seen.
fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = (&mut stdout).take(1 << 30).read_to_end(&mut o);
        let mut e = Vec::new();
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut e);
        (o, e)
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (stdout, stderr) = reader.join().unwrap();
            return (
                Output {
                    status,
                    stdout,
                    stderr,
                },
                start.elapsed(),
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One line on stderr, exit 1, nothing on stdout; returns the line.
fn refused(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("dockpack: "), "{err}");
    assert!(o.stdout.is_empty(), "{} bytes on stdout", o.stdout.len());
    err
}

fn image(layer: &Path) -> Command {
    let mut c = dockpack();
    c.args(["image", "--tag", "t:1", "--arch", "amd64"])
        .arg(layer);
    c
}

/// Names in `dir` that look like our temporaries.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains("partial"))
        .collect()
}

#[test]
fn pax_sizes_that_overflow_are_refused() {
    let t = tempfile::tempdir().unwrap();
    for (i, size) in [u64::MAX, u64::MAX - 511, 1 << 63].into_iter().enumerate() {
        let layer = t.path().join(format!("big{i}.tar"));
        // write_header puts a size over 8 GiB into a pax `size` record,
        // which is what the attacker writes.
        fs::write(&layer, tar(&[member(b"f", Kind::Regular, size, b"")])).unwrap();
        let (o, took) = run_bounded(image(&layer), Duration::from_secs(10));
        let err = refused(&o);
        assert!(err.contains(&format!("big{i}.tar")), "{err}");
        assert!(err.contains("out of range"), "{err}");
        assert!(took < Duration::from_secs(5));
    }
}

#[test]
fn special_files_as_layers_are_refused_without_reading() {
    let t = tempfile::tempdir().unwrap();
    let fifo = t.path().join("layer.fifo");
    nix_mkfifo(&fifo);
    for (path, what) in [
        (fifo.clone(), "a FIFO"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (t.path().to_path_buf(), "a directory"),
    ] {
        let (o, took) = run_bounded(image(&path), Duration::from_secs(10));
        let err = refused(&o);
        assert!(
            err.contains(&format!("{:?}", path.to_str().unwrap())),
            "{err}"
        );
        assert!(err.contains(what), "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}

fn nix_mkfifo(p: &Path) {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, p, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
}

#[test]
fn members_outside_the_root_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = member(b"etc/", Kind::Directory, 0, b"");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            tar(&[dir.clone(), member(b"etc/../../x", Kind::Symlink, 0, b"y")]),
            "\"etc/../../x\"",
        ),
        (
            "absolute",
            tar(&[member(b"/etc/passwd", Kind::Symlink, 0, b"y")]),
            "\"/etc/passwd\"",
        ),
        (
            "bare-dotdot",
            tar(&[member(b"..", Kind::Directory, 0, b"")]),
            "\"..\"",
        ),
        (
            "hardlink",
            tar(&[
                dir,
                member(b"etc/x", Kind::HardLink, 0, b"../../etc/shadow"),
            ]),
            "\"../../etc/shadow\"",
        ),
        (
            // A long name goes into pax `path`: checked all the same.
            "pax-path",
            tar(&[member(
                format!("{}/../../../x", "a".repeat(120)).as_bytes(),
                Kind::Symlink,
                0,
                b"y",
            )]),
            "/../../../x\"",
        ),
        (
            // A newline in the name cannot forge a second message line.
            "newline",
            tar(&[member(b"../x\ndockpack: fine", Kind::Symlink, 0, b"y")]),
            "\"../x\\ndockpack: fine\"",
        ),
    ];
    for (name, bytes, shown) in cases {
        let layer = t.path().join(format!("{name}.tar"));
        fs::write(&layer, &bytes).unwrap();
        let (o, _) = run_bounded(image(&layer), Duration::from_secs(10));
        let err = refused(&o);
        assert!(err.contains(&format!("{name}.tar")), "{err}");
        assert!(err.contains(shown), "{name}: {err}");
    }
    // A good layer with `./` names and a plain `..` inside a symlink
    // target (targets may point anywhere; only names are checked).
    let ok = tar(&[
        member(b"./", Kind::Directory, 0, b""),
        member(b"./l", Kind::Symlink, 0, b"../../etc/passwd"),
    ]);
    let layer = t.path().join("ok.tar");
    fs::write(&layer, ok).unwrap();
    let (o, _) = run_bounded(image(&layer), Duration::from_secs(10));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn good_layer(dir: &Path) -> PathBuf {
    let layer = dir.join("good.tar");
    fs::write(&layer, tar(&[member(b"./", Kind::Directory, 0, b"")])).unwrap();
    layer
}

/// `--iidfile` at a symlink (to a file, dangling, to a directory's
/// file): the link is replaced by the id file, its target never touched.
fn iidfile_through_symlinks(as_user: Option<u32>) {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    let layer = good_layer(t.path());
    let victim = t.path().join("victim");
    fs::write(&victim, b"precious\n").unwrap();
    let dangling_target = t.path().join("created-through-link");
    symlink(&victim, out.join("to-file.iid")).unwrap();
    symlink(&dangling_target, out.join("dangling.iid")).unwrap();
    if let Some(uid) = as_user {
        for p in [t.path(), &out] {
            std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
        }
        std::os::unix::fs::lchown(out.join("to-file.iid"), Some(uid), Some(uid)).unwrap();
        std::os::unix::fs::lchown(out.join("dangling.iid"), Some(uid), Some(uid)).unwrap();
        std::os::unix::fs::chown(&layer, Some(uid), Some(uid)).unwrap();
    }
    for name in ["to-file.iid", "dangling.iid"] {
        let iid = out.join(name);
        let mut cmd = match as_user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(assert_cmd::cargo::cargo_bin("dockpack"));
                c
            }
            None => dockpack(),
        };
        cmd.args(["image", "--tag", "t:1", "--arch", "amd64", "--iidfile"])
            .arg(&iid)
            .arg(&layer);
        let (o, _) = run_bounded(cmd, Duration::from_secs(20));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m = fs::symlink_metadata(&iid).unwrap();
        assert!(m.is_file(), "{name} is still a link");
        let id = fs::read_to_string(&iid).unwrap();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    }
    assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    assert!(!dangling_target.exists(), "written through a dangling link");
    assert_eq!(leftovers(&out), Vec::<String>::new());
}

#[test]
fn iidfile_replaces_a_symlink_never_follows_it() {
    iidfile_through_symlinks(None);
}

#[test]
fn iidfile_replaces_a_symlink_as_an_ordinary_user() {
    if !is_root() {
        skip("needs root to switch to uid 65534 (the test above runs as this user)");
        return;
    }
    if !testkit::runs_as_nobody(&assert_cmd::cargo::cargo_bin("dockpack")) {
        skip("setpriv or the dockpack binary is not usable as uid 65534");
        return;
    }
    iidfile_through_symlinks(Some(65534));
}

#[test]
fn iidfile_in_a_missing_directory_fails_by_name_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let layer = good_layer(t.path());
    let mut cmd = image(&layer);
    cmd.arg("--iidfile").arg(t.path().join("nowhere/x.iid"));
    let (o, _) = run_bounded(cmd, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("nowhere/x.iid\""), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert_eq!(leftovers(t.path()), Vec::<String>::new());
}

#[test]
fn oci_dir_at_a_symlink_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let layer = good_layer(t.path());
    let target = t.path().join("elsewhere");
    fs::create_dir(&target).unwrap();
    symlink(&target, t.path().join("to-dir")).unwrap();
    symlink(t.path().join("missing"), t.path().join("dangling")).unwrap();
    for name in ["to-dir", "dangling"] {
        let dest = t.path().join(name);
        let mut cmd = dockpack();
        cmd.args(["image", "--tag", "t:1", "--arch", "amd64", "--oci-dir"])
            .arg(&dest)
            .arg(&layer);
        let (o, took) = run_bounded(cmd, Duration::from_secs(10));
        let err = refused(&o);
        assert!(err.contains(&format!("{name}\"")), "{err}");
        assert!(err.contains("symbolic link"), "{err}");
        assert!(took < Duration::from_secs(5));
        assert!(fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    assert!(!t.path().join("missing").exists());
    assert_eq!(leftovers(t.path()), Vec::<String>::new());
}

/// A layer of `n` members: `a/`, then `a/d0000000`… directories, then
/// `bin/` and `bin/x` (an x86-64 ELF header), so that a lookup of
/// `/bin/x` must see the whole layer.
fn wide_layer(path: &Path, n: usize) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(fs::File::create(path).unwrap());
    w.write_all(&member(b"a/", Kind::Directory, 0, b""))
        .unwrap();
    for i in 0..n {
        w.write_all(&member(
            format!("a/d{i:07}/").as_bytes(),
            Kind::Directory,
            0,
            b"",
        ))
        .unwrap();
    }
    w.write_all(&member(b"bin/", Kind::Directory, 0, b""))
        .unwrap();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little-endian
    elf[6] = 1;
    elf[18] = 183; // EM_AARCH64: not the host's, so it was really read
    w.write_all(&member(b"bin/x", Kind::Regular, 64, b""))
        .unwrap();
    w.write_all(&elf).unwrap();
    w.write_all(&[0u8; 512][..tarfmt::padding(64)]).unwrap();
    tarfmt::write_end(&mut w).unwrap();
    w.flush().unwrap();
}

fn arch_of(layer: &Path, cmd: &str) -> (String, Duration) {
    let t = layer.parent().unwrap();
    let oci = t.join(format!("oci-{}", cmd.len()));
    let mut c = dockpack();
    c.args(["image", "--tag", "t:1", "--cmd", cmd, "--oci-dir"])
        .arg(&oci)
        .arg(layer);
    let (o, took) = run_bounded(c, Duration::from_secs(120));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = fs::read_to_string(oci.join("index.json")).unwrap();
    let digest = index.split("sha256:").nth(1).unwrap()[..64].to_string();
    let manifest = fs::read_to_string(oci.join("blobs/sha256").join(&digest)).unwrap();
    let config = manifest.split("sha256:").nth(1).unwrap()[..64].to_string();
    let config = fs::read_to_string(oci.join("blobs/sha256").join(&config)).unwrap();
    let arch = config
        .split("\"architecture\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    fs::remove_dir_all(&oci).unwrap();
    (arch, took)
}

#[test]
fn deep_dotdot_cmd_lookup_reads_the_layer_once() {
    // 300k members: 150 MB of headers, written and removed here.
    let t = tempfile::tempdir().unwrap();
    let layer = t.path().join("wide.tar");
    wide_layer(&layer, 300_000);
    let (arch, plain) = arch_of(&layer, "/bin/x");
    assert_eq!(arch, "arm64");
    let deep = format!("/a{}/../bin/x", "/../a".repeat(40));
    let (arch, deep_took) = arch_of(&layer, &deep);
    assert_eq!(arch, "arm64");
    eprintln!("/bin/x: {plain:?}; 40 x '..': {deep_took:?}");
    // One walk of the layer for either path (each walk of this layer is
    // about 0.4 s here even unoptimised): the deep lookup may not cost
    // a walk per component. Before, it took over 15 s.
    assert!(
        deep_took < plain * 2 + Duration::from_secs(1),
        "deep {deep_took:?} against plain {plain:?}"
    );
}
