//! End-to-end tests of the `mkinitrd` binary: archives are unpacked with
//! GNU `cpio -idm` into a fresh directory and the result is listed with
//! `fileids` (its library, the same code as its binary) to compare with the
//! source tree: GNU cpio is the newc reader the seed's cookbook used, so a
//! tree that comes back the same shows the archive holds what it should.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use filelist::owner::{FakerootState, Ownership};
use filelist::records::Terminator;
use testkit::{have, is_root, skip};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(st.success(), "sh -c {script:?} failed");
}

/// `find . | LC_ALL=C sort` in `dir`, as bytes with LF terminators.
fn names(dir: &Path) -> Vec<u8> {
    let out = Command::new("find")
        .arg(".")
        .arg("-print0")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("find: {e}"));
    assert!(out.status.success());
    let mut names: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    let mut text = Vec::new();
    for n in names {
        text.extend_from_slice(n);
        text.push(b'\n');
    }
    text
}

/// The `fileids` list of `dir` with the given ownership rule.
fn fileids(dir: &Path, ownership: Ownership) -> Vec<u8> {
    let opts = fileids::Options {
        dir: dir.to_path_buf(),
        input: Terminator::Newline,
        output: Terminator::Newline,
        ownership,
        jobs: 1,
        xattrs: filelist::xattr::Policy::Default,
    };
    let mut out = Vec::new();
    fileids::list(&names(dir)[..], &mut out, &opts).unwrap_or_else(|e| panic!("fileids: {e:#}"));
    out
}

fn mkinitrd(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    assert_cmd::Command::cargo_bin("mkinitrd")
        .unwrap_or_else(|e| panic!("{e}"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap_or_else(|e| panic!("mkinitrd: {e}"))
}

fn ok(out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "mkinitrd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Unpacks with GNU cpio into a fresh directory.
fn unpack(archive: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let t = tmp();
    let root = t.path().join("u");
    fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
    let mut cpio = Command::new("cpio");
    cpio.args(["-idm", "--no-absolute-filenames", "--quiet"])
        .current_dir(&root);
    let out = testkit::run(cpio, archive);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "cpio -idm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (t, root)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tree with every type the format holds; owners and devices need root.
fn sample_tree(dir: &Path) {
    sh(
        dir,
        r#"
        mkdir -p bin etc/empty 'with space' sticky
        chmod 700 etc/empty; chmod 1777 sticky
        printf 'hello\n' > bin/hello; chmod 755 bin/hello
        printf '' > empty
        printf 'x%.0s' $(seq 1 5000) > 'with space/big file'
        cp bin/hello bin/setuid; chmod 4755 bin/setuid
        printf 'linked' > etc/a; ln etc/a etc/b; ln etc/a bin/c
        ln -s ../bin/hello etc/rel; ln -s /bin/sh abs; ln -s nowhere dangling
        mkfifo fifo; chmod 640 fifo
        printf 'odd' > "$(printf 'na\377me')"
        "#,
    );
    if is_root() {
        sh(
            dir,
            "mknod null c 1 3; mknod sda b 8 0; chown 1000:1001 bin/hello; chown 5:6 etc etc/a; chown 7:8 abs",
        );
    }
}

#[test]
fn unpacks_to_the_same_tree_from_names_and_from_lines() {
    if !have("cpio") {
        skip("GNU cpio is not installed");
        return;
    }
    let src = tmp();
    sample_tree(src.path());
    let list = fileids(src.path(), Ownership::default());
    for input in [names(src.path()), list.clone()] {
        let archive = ok(mkinitrd(src.path(), &[], &input));
        let (_t, root) = unpack(&archive);
        assert_eq!(text(&fileids(&root, Ownership::default())), text(&list));
        // Hard links came back as one inode.
        let ino = |p: &str| fs::metadata(root.join(p)).map(|m| m.ino()).unwrap_or(0);
        assert_eq!(ino("etc/a"), ino("etc/b"));
        assert_eq!(ino("etc/a"), ino("bin/c"));
        assert_eq!(
            fs::metadata(root.join("etc/a")).map(|m| m.nlink()).ok(),
            Some(3)
        );
    }
}

#[test]
fn owner_option_makes_everything_root() {
    if !is_root() || !have("cpio") {
        skip("needs root (cpio -i restores owners only as root) and cpio");
        return;
    }
    let src = tmp();
    sample_tree(src.path());
    let zero = || Ownership {
        owner: Some((0, 0)),
        fakeroot: None,
    };
    let expected = fileids(src.path(), zero());
    assert!(text(&expected).contains("0100755-0-0-"));
    let archive = ok(mkinitrd(
        src.path(),
        &["--owner", "0:0"],
        &names(src.path()),
    ));
    let (_t, root) = unpack(&archive);
    assert_eq!(text(&fileids(&root, Ownership::default())), text(&expected));
    // --owner also overrides the owner of list lines.
    let lines = fileids(src.path(), Ownership::default());
    let again = ok(mkinitrd(src.path(), &["--owner", "0:0"], &lines));
    assert_eq!(again, archive);
}

#[test]
fn same_tree_same_bytes_and_epoch_rules_mtime() {
    let src = tmp();
    sample_tree(src.path());
    let input = names(src.path());
    let a = ok(mkinitrd(src.path(), &[], &input));
    sh(src.path(), "touch -d '2001-02-03' bin/hello etc/a .");
    let b = ok(mkinitrd(src.path(), &[], &input));
    assert_eq!(a, b, "two runs differ");
    // The first member is `.`, with mtime 0 (SOURCE_DATE_EPOCH unset).
    assert_eq!(&a[..6], b"070701");
    assert_eq!(&a[46..54], b"00000000");
    assert_eq!(&a[110..112], b".\0");

    let out = assert_cmd::Command::cargo_bin("mkinitrd")
        .unwrap_or_else(|e| panic!("{e}"))
        .arg("-C")
        .arg(src.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .write_stdin(input.clone())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let c = ok(out);
    assert_eq!(&c[46..54], b"6553F100");

    if have("cpio") {
        let kept = ok(mkinitrd(src.path(), &["--keep-mtime"], &input));
        let (_t, root) = unpack(&kept);
        let mtime = |d: &Path| fs::metadata(d.join("bin/hello")).map(|m| m.mtime()).ok();
        assert_eq!(mtime(&root), mtime(src.path()));
    }
}

#[test]
fn gzip_output_is_what_gzip_reads() {
    let src = tmp();
    sample_tree(src.path());
    let input = names(src.path());
    let plain = ok(mkinitrd(src.path(), &[], &input));
    let gz = ok(mkinitrd(src.path(), &["--gzip"], &input));
    assert_eq!(&gz[..3], b"\x1f\x8b\x08");
    assert_eq!(gz[3], 0, "no FNAME or other flags in the gzip header");
    assert_eq!(&gz[4..8], b"\0\0\0\0", "gzip header mtime must be 0");
    assert_eq!(gz, ok(mkinitrd(src.path(), &["--gzip"], &input)));
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("gzip: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let writer = std::thread::spawn(move || stdin.write_all(&gz));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(writer.join().is_ok_and(|r| r.is_ok()));
    assert!(out.status.success());
    assert_eq!(out.stdout, plain);
}

#[test]
fn fakeroot_state_gives_owners_modes_and_devices() {
    if !is_root() || !have("cpio") || !have("fakeroot") {
        skip("needs root (to unpack devices), cpio and fakeroot");
        return;
    }
    let t = tmp();
    let src = t.path().join("src");
    let state = t.path().join("state");
    fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    let st = Command::new("fakeroot")
        .arg("-s")
        .arg(&state)
        .args([
            "sh",
            "-ec",
            "mknod tty c 5 0; mknod disk b 8 16; echo x > f; chown 5:6 f; chmod 4711 f; \
             mkdir d; chown 7:8 d; ln -s f l; chown -h 9:10 l",
        ])
        .current_dir(&src)
        .status()
        .unwrap_or_else(|e| panic!("fakeroot: {e}"));
    assert!(st.success());
    let text_state = fs::read(&state).unwrap_or_else(|e| panic!("{e}"));
    let parsed = FakerootState::parse(&text_state[..]).unwrap_or_else(|e| panic!("{e}"));
    let expected = fileids(
        &src,
        Ownership {
            owner: None,
            fakeroot: Some(parsed),
        },
    );
    assert!(
        text(&expected).contains("./tty 0020644-0-0-5:0"),
        "{}",
        text(&expected)
    );
    let state_arg = state.to_string_lossy().into_owned();
    let archive = ok(mkinitrd(&src, &["--fakeroot", &state_arg], &names(&src)));
    let (_t, root) = unpack(&archive);
    assert_eq!(text(&fileids(&root, Ownership::default())), text(&expected));
    // The same list given as lines: the line's device type agrees with
    // the state, though the disk holds an empty regular file.
    let again = ok(mkinitrd(&src, &["--fakeroot", &state_arg], &expected));
    assert_eq!(again, archive);
}

#[test]
fn add_puts_a_host_file_at_a_path() {
    let src = tmp();
    sample_tree(src.path());
    let host = src.path().join("bin/hello");
    let arg = format!("init={}", host.display());
    let archive = ok(mkinitrd(src.path(), &["--add", &arg], b".\n"));
    if have("cpio") {
        let (_t, root) = unpack(&archive);
        assert_eq!(fs::read(root.join("init")).ok(), Some(b"hello\n".to_vec()));
        let mode = fs::metadata(root.join("init"))
            .map(|m| m.permissions().mode())
            .ok();
        assert_eq!(mode, Some(0o100755));
    }
}

#[test]
fn partial_hard_link_set_is_written_at_the_end() {
    let src = tmp();
    sample_tree(src.path());
    // Only two of the three links of etc/a.
    let archive = ok(mkinitrd(
        src.path(),
        &[],
        b".\n./etc\n./etc/a\n./etc/b\n./fifo\n",
    ));
    let pos = |needle: &[u8]| archive.windows(needle.len()).position(|w| w == needle);
    assert!(pos(b"fifo\0") < pos(b"etc/a\0"));
    if have("cpio") {
        let (_t, root) = unpack(&archive);
        assert_eq!(fs::read(root.join("etc/b")).ok(), Some(b"linked".to_vec()));
        let ino = |p: &str| fs::metadata(root.join(p)).map(|m| m.ino()).ok();
        assert_eq!(ino("etc/a"), ino("etc/b"));
    }
}

/// A failure: non-zero exit, one line on stderr naming the problem, and no
/// trailer on stdout.
fn fails(out: Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "succeeded; stderr {err:?}");
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(err.starts_with("mkinitrd: "), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(
        !out.stdout.windows(10).any(|w| w == b"TRAILER!!!"),
        "a failed archive has a trailer"
    );
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let src = tmp();
    sample_tree(src.path());
    let d = src.path();
    fails(
        mkinitrd(d, &[], b".\n./missing\n"),
        "stdin line 2: \"./missing\": cannot stat: No such file",
    );
    fails(mkinitrd(d, &[], b".\n./bin/../../x\n"), "'..'");
    fails(mkinitrd(d, &[], b"/etc/passwd\n"), "absolute");
    fails(mkinitrd(d, &[], b".\n\n"), "stdin line 2: \"\": empty name");
    fails(
        mkinitrd(d, &["--add", "init"], b""),
        "ARCHIVE_PATH=HOST_FILE",
    );
    fails(mkinitrd(d, &["--add", "../init=/bin/sh"], b""), "'..'");
    // A malformed option is a usage error (2), a bad state file bad input (1).
    let out = mkinitrd(d, &["--owner", "root"], b"");
    assert_eq!(out.status.code(), Some(2));
    fails(out, "--owner");
    let state = d.join("bad-state");
    fs::write(&state, b"dev=fe00,ino=1,mode=100644\n").unwrap_or_else(|e| panic!("{e}"));
    let out = mkinitrd(d, &["--fakeroot", &state.to_string_lossy()], b"");
    assert_eq!(out.status.code(), Some(1));
    fails(out, "line 1: not a fakeroot state line");
    fails(
        mkinitrd(d, &["--fakeroot", "/nonexistent/state"], b""),
        "/nonexistent/state",
    );

    // Over 4 GiB: sparse, so no disk is used.
    let st = Command::new("truncate")
        .args(["-s", "5G"])
        .arg(d.join("huge"))
        .status()
        .unwrap_or_else(|e| panic!("truncate: {e}"));
    assert!(st.success());
    fails(
        mkinitrd(d, &[], b".\n./huge\n"),
        "\"./huge\": 5368709120 bytes is too large",
    );
    let add = format!("big={}", d.join("huge").display());
    fails(mkinitrd(d, &["--add", &add], b""), "too large");
    let _ = fs::remove_file(d.join("huge"));

    // A list line whose type disagrees with the disk.
    fails(
        mkinitrd(d, &[], b"./empty 0040755-0-0-0\n"),
        "the list says a directory",
    );
}

#[test]
fn a_file_changed_since_listing_is_an_error() {
    let src = tmp();
    sample_tree(src.path());
    let d = src.path();
    let list = fileids(d, Ownership::default());
    ok(mkinitrd(d, &[], &list));
    // Same size, other content.
    fs::write(d.join("bin/hello"), b"HELLO\n").unwrap_or_else(|e| panic!("{e}"));
    fails(
        mkinitrd(d, &[], &list),
        "\"./bin/hello\": content changed since it was listed",
    );
    // Another size.
    fs::write(d.join("bin/hello"), b"hello, world\n").unwrap_or_else(|e| panic!("{e}"));
    fails(mkinitrd(d, &[], &list), "changed since it was listed");
    // A symlink retargeted.
    let list = fileids(d, Ownership::default());
    sh(d, "rm etc/rel; ln -s elsewhere etc/rel");
    fails(
        mkinitrd(d, &[], &list),
        "\"./etc/rel\": link target changed",
    );
}

#[test]
fn unreadable_file_is_an_error() {
    let src = tmp();
    let d = src.path();
    fs::write(d.join("secret"), b"s").unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(d.join("secret"), fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    let bin = assert_cmd::cargo::cargo_bin("mkinitrd");
    let out = if is_root() {
        if !have("setpriv") {
            skip("needs setpriv to drop root");
            return;
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let mut setpriv = Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("-C")
            .arg(d);
        testkit::run(setpriv, b".\n./secret\n")
    } else {
        mkinitrd(d, &[], b".\n./secret\n")
    };
    if text(&out.stderr).contains("Permission denied") && out.stderr.starts_with(b"setpriv") {
        skip("the test binary is not reachable as uid 65534");
        return;
    }
    fails(out, "\"./secret\": cannot open: Permission denied");
}

#[test]
fn closed_stdout_is_a_quiet_exit() {
    let src = tmp();
    let d = src.path();
    // 64 MiB of sparse zeros: far more than a pipe holds, no disk used.
    let st = Command::new("truncate")
        .args(["-s", "64M"])
        .arg(d.join("zeros"))
        .arg(d.join("zeros2"))
        .status()
        .unwrap_or_else(|e| panic!("truncate: {e}"));
    assert!(st.success());
    for gzip in [false, true] {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mkinitrd"));
        cmd.arg("-C").arg(d);
        if gzip {
            // Zeros compress ~1000:1; still far more than a pipe holds.
            cmd.arg("--gzip");
        }
        testkit::assert_quiet_when_stdout_closed(cmd, b"./zeros\n./zeros2\n".to_vec(), 6);
    }
}

#[test]
fn nul_terminated_names() {
    let src = tmp();
    let d = src.path();
    fs::write(d.join("a\nb"), b"nl").unwrap_or_else(|e| panic!("{e}"));
    let archive = ok(mkinitrd(d, &["-0"], b".\0./a\nb\0"));
    assert!(archive.windows(4).any(|w| w == b"a\nb\0"));
    if have("cpio") {
        let (_t, root) = unpack(&archive);
        assert_eq!(fs::read(root.join("a\nb")).ok(), Some(b"nl".to_vec()));
        let names: Vec<_> = fs::read_dir(&root)
            .map(|r| {
                r.filter_map(|e| e.ok().map(|e| e.file_name().as_bytes().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, vec![b"a\nb".to_vec()]);
    }
}

#[test]
fn failed_gzip_archive_is_not_a_whole_gzip_stream() {
    let src = tmp();
    let d = src.path();
    // 1 MiB that does not compress to nothing, so compressed bytes reach
    // stdout before the error.
    let mut x: u32 = 1;
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    fs::write(d.join("noise"), &noise).unwrap_or_else(|e| panic!("{e}"));
    let out = mkinitrd(d, &["--gzip"], b"./noise\n./missing\n");
    assert!(!out.status.success());
    assert!(!out.stdout.is_empty(), "expected partial output");
    let mut gzip = Command::new("gzip");
    gzip.arg("-dc");
    let unzipped = testkit::run(gzip, &out.stdout);
    assert!(!unzipped.status.success(), "gzip accepted a failed archive");
    assert!(!unzipped.stdout.windows(10).any(|w| w == b"TRAILER!!!"));
}

/// A state may put a device or FIFO over the empty regular file
/// fakeroot's mknod leaves, but not over a directory.
#[test]
fn fakeroot_device_only_over_a_regular_file() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = t.path();
    fs::write(d.join("node"), b"").unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir(d.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    let state = d.join("state");
    let line = |name: &str| {
        let m = fs::symlink_metadata(d.join(name)).unwrap_or_else(|e| panic!("{e}"));
        format!(
            "dev={:x},ino={},mode=20644,uid=0,gid=0,nlink=1,rdev=259\n",
            m.dev(),
            m.ino()
        )
    };
    let st = state.to_string_lossy().into_owned();
    fs::write(&state, line("node")).unwrap_or_else(|e| panic!("{e}"));
    ok(mkinitrd(d, &["--fakeroot", &st], b"./node\n"));
    fs::write(&state, line("dir")).unwrap_or_else(|e| panic!("{e}"));
    let out = mkinitrd(d, &["--fakeroot", &st], b"./dir\n");
    assert_eq!(out.status.code(), Some(1));
    fails(
        out,
        "the fakeroot state says a character device, but it is a directory on disk",
    );
}

/// A full disk under stdout is the output's failure, said once, not the
/// failure of the member being written when it struck (which was how it
/// read: `stdin line 105: "./etc/...": No space left on device`).
#[test]
fn a_full_output_is_reported_as_the_outputs() {
    let t = tmp();
    let dir = t.path();
    sample_tree(dir);
    // Enough data that the failure comes while a member is written.
    sh(dir, "head -c 3000000 /dev/urandom > bin/large");
    let names = names(dir);
    for args in [
        &[][..],
        &["--compress", "gzip"],
        &["--compress", "zstd"],
        &["--compress", "lz4"],
    ] {
        let full = fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap_or_else(|e| panic!("/dev/full: {e}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mkinitrd"))
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(full))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("mkinitrd: {e}"));
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        // mkinitrd may stop reading once the output fails.
        let _ = stdin.write_all(&names);
        drop(stdin);
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("mkinitrd: {e}"));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            "mkinitrd: writing stdout: No space left on device\n",
            "{args:?}"
        );
    }
}
