//! `dockpack` against GNU tar and against bad input.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

use common::{dockpack, hello_tree, layer, list};

fn gnu_tar_list(tar: &std::path::Path) -> String {
    let o = Command::new("tar").arg("-tvf").arg(tar).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn layer_round_trips_through_gnu_tar() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    let long = "d".repeat(60) + "/" + &"e".repeat(70);
    fs::create_dir_all(root.join(&long)).unwrap();
    fs::write(root.join(&long).join("f"), b"long").unwrap();
    fs::write(root.join("caf\u{e9}"), b"utf8").unwrap();
    fs::hard_link(root.join("bin/hello"), root.join("bin/hello2")).unwrap();
    Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    let l = t.path().join("l.tar");
    layer(&root, &list(&root), &l);
    let listing = gnu_tar_list(&l);
    assert!(listing.contains(&format!("{long}/f")), "{listing}");
    assert!(
        listing.contains("bin/hello2 link to bin/hello"),
        "{listing}"
    );
    assert!(listing.contains("init -> bin/hello"), "{listing}");
    assert!(listing.starts_with("drwxr-xr-x 0/0"), "{listing}");
    assert!(!listing.contains(" ./\n"), "root entry written: {listing}");
    // Unpack with GNU tar and compare the content.
    let x = t.path().join("x");
    fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&l)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(fs::read(x.join(&long).join("f")).unwrap(), b"long");
    assert_eq!(fs::read(x.join("caf\u{e9}")).unwrap(), b"utf8");
    assert_eq!(
        fs::read(x.join("bin/hello")).unwrap(),
        fs::read(root.join("bin/hello")).unwrap()
    );
}

#[test]
fn same_inputs_same_bytes_and_epoch() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    let input = list(&root);
    let run = |epoch: &str| {
        dockpack()
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(["layer", "-C"])
            .arg(&root)
            .write_stdin(input.clone())
            .output()
            .unwrap()
            .stdout
    };
    let a = run("1700000000");
    assert_eq!(a, run("1700000000"));
    assert_ne!(a, run("0"));
    let p = t.path().join("a.tar");
    fs::write(&p, &a).unwrap();
    assert!(gnu_tar_list(&p).contains("2023-11-14"));
    // Plain names give the same layer as list lines when owners agree.
    let names: String = input
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_string() + "\n")
        .collect();
    let b = dockpack()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["layer", "-C"])
        .arg(&root)
        .write_stdin(names)
        .output()
        .unwrap()
        .stdout;
    assert_eq!(a, b);
}

#[test]
fn whiteout_lines_become_empty_wh_files() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("w.tar");
    layer(t.path(), "./etc/.wh.passwd 0100000-0-0-whiteout\n", &l);
    let listing = gnu_tar_list(&l);
    assert!(
        listing.starts_with("---------- 0/0               0 1970-01-01 00:00 etc/.wh.passwd"),
        "{listing}"
    );
}

#[test]
fn changed_file_is_an_error_and_no_complete_tar() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("a"), vec![b'a'; 1000]).unwrap();
    fs::write(root.join("b"), b"before").unwrap();
    let input = list(&root);
    fs::write(root.join("b"), b"after!").unwrap();
    let o = dockpack()
        .arg("layer")
        .arg("-C")
        .arg(&root)
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("dockpack: stdin line 3: \"./b\": "),
        "{err}"
    );
    assert!(err.contains("changed since it was listed"), "{err}");
    let p = t.path().join("partial.tar");
    fs::write(&p, &o.stdout).unwrap();
    let st = Command::new("tar").arg("-tf").arg(&p).output().unwrap();
    assert!(!st.status.success(), "GNU tar accepted the partial layer");
}

/// A list line's digest is checked on a second thread while the next
/// entries are already being read: a change is still reported for the
/// file that changed (not for a later entry, even one that fails too),
/// and the output is still no complete tar. Sizes cover a file of one
/// chunk and one of several (chunks are 256 KiB).
#[test]
fn changed_file_followed_by_others_is_named() {
    // 9 MiB: more chunks than the 32 buffers, so reading waits for them.
    for (size, then_missing) in [
        (1000, false),
        (600 * 1024, false),
        (600 * 1024, true),
        (9 << 20, false),
    ] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("a"), vec![b'a'; size]).unwrap();
        fs::write(root.join("a2"), b"a2").unwrap();
        fs::create_dir(root.join("b")).unwrap();
        fs::write(root.join("b/c"), b"c").unwrap();
        fs::write(root.join("d"), vec![b'd'; size]).unwrap();
        let input = list(&root);
        let mut changed = vec![b'a'; size];
        changed[size - 1] = b'b';
        fs::write(root.join("a"), changed).unwrap();
        if then_missing {
            // Fails before anything of it is written.
            fs::remove_file(root.join("a2")).unwrap();
        }
        let o = dockpack()
            .arg("layer")
            .arg("-C")
            .arg(&root)
            .write_stdin(input)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("dockpack: stdin line 2: \"./a\": "),
            "{err}"
        );
        assert!(err.contains("changed since it was listed"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let p = t.path().join("partial.tar");
        fs::write(&p, &o.stdout).unwrap();
        let st = Command::new("tar").arg("-tf").arg(&p).output().unwrap();
        assert!(!st.status.success(), "GNU tar accepted the partial layer");
        // Nothing of `a`'s last chunk (where the change is) was written.
        assert!(!o.stdout.windows(2).any(|w| w == b"ab"));
    }
}

#[test]
fn bad_entries_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir(root.join("d")).unwrap();
    symlink("/etc", root.join("d/a")).unwrap();
    for (input, want) in [
        ("/etc/passwd\n", "absolute"),
        ("./x/../../y\n", "'..'"),
        ("./missing\n", "cannot stat"),
        ("./d/a\n./d/a/passwd\n", "parent \"d/a\" is a symlink"),
        ("./d/a/passwd\n", "parent \"d/a\" is a symlink"),
    ] {
        let o = dockpack()
            .arg("layer")
            .arg("-C")
            .arg(root)
            .write_stdin(input)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{input}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{input}: {err}"
        );
    }
}

/// A list may say device or FIFO over the empty regular file fakeroot's
/// mknod leaves, but not over a directory.
#[test]
fn listed_device_only_over_a_regular_file() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("node"), b"").unwrap();
    fs::create_dir(t.path().join("dir")).unwrap();
    let run = |input: &str| {
        dockpack()
            .arg("layer")
            .arg("-C")
            .arg(t.path())
            .write_stdin(input)
            .output()
            .unwrap()
    };
    let o = run("./node 0020644-0-0-1:3\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run("./dir 0020644-0-0-1:3\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the list says a character device, but it is a directory on disk")
            && err.lines().count() == 1,
        "{err}"
    );
}

/// A malformed `--owner` is a usage error (2); a state file that does not
/// parse is bad input (1), as for fileids and mkinitrd.
#[test]
fn bad_owner_is_usage_and_bad_state_is_input() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    fs::write(&state, "dev=fe00,ino=1,mode=100644\n").unwrap();
    for (args, code, want) in [
        (
            vec!["--owner".as_ref(), "root".as_ref()],
            2,
            "--owner wants UID:GID",
        ),
        (
            vec!["--fakeroot".as_ref(), state.as_os_str()],
            1,
            "line 1: not a fakeroot state line",
        ),
    ] {
        let o = dockpack()
            .arg("layer")
            .args(args)
            .write_stdin("")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn image_refuses_bad_input_before_any_output() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    let good = t.path().join("good.tar");
    layer(&root, &list(&root), &good);
    let bytes = fs::read(&good).unwrap();
    let cut = t.path().join("cut.tar");
    fs::write(&cut, &bytes[..bytes.len() - 1024]).unwrap();
    let junk = t.path().join("junk.tar");
    fs::write(&junk, vec![b'x'; 2048]).unwrap();
    let g = good.to_str().unwrap();
    // A bad option value is a usage error (2); a bad layer a failure (1).
    for (args, want, code) in [
        (vec![], "no layers", 1),
        (vec![g, cut.to_str().unwrap()], "cut.tar", 1),
        (vec![junk.to_str().unwrap()], "junk.tar", 1),
        (vec!["--tag", "Hello:1", g], "invalid tag", 2),
        (vec!["--tag", "a:b:c", g], "invalid tag", 2),
        (vec!["/nonexistent.tar"], "nonexistent", 1),
    ] {
        let o = dockpack().arg("image").args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn image_is_byte_identical_on_rebuild_and_detects_arch() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    // An arm64 ELF header behind a symlink chain decides the arch.
    fs::create_dir(root.join("arm")).unwrap();
    let mut h = vec![0u8; 64];
    h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    h[18] = 183; // EM_AARCH64
    fs::write(root.join("arm/prog"), &h).unwrap();
    symlink("../arm/prog", root.join("bin/armprog")).unwrap();
    let l = t.path().join("l.tar");
    layer(&root, &list(&root), &l);
    let build = |extra: &[&str]| {
        let o = dockpack()
            .arg("image")
            .args(extra)
            .arg(&l)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let a = build(&["--tag", "x:1"]);
    assert_eq!(a, build(&["--tag", "x:1"]));
    let img = t.path().join("img.tar");
    fs::write(&img, &a).unwrap();
    let config = |img: &std::path::Path| {
        let o = Command::new("skopeo")
            .arg("inspect")
            .arg("--config")
            .arg(format!("docker-archive:{}", img.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert!(config(&img).contains("\"architecture\": \"amd64\""));
    fs::write(&img, build(&["--cmd", "/bin/armprog"])).unwrap();
    let c = config(&img);
    assert!(c.contains("\"architecture\": \"arm64\""), "{c}");
}

#[test]
fn fakeroot_state_and_nul_records() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    fs::create_dir(&root).unwrap();
    // What `fakeroot -s` leaves after `mknod dev/null c 1 3` and a chown:
    // an empty regular file on disk, the truth in the state file.
    fs::write(root.join("null"), b"").unwrap();
    fs::write(root.join("a b\nc"), b"x").unwrap();
    let m = fs::metadata(root.join("null")).unwrap();
    let state = t.path().join("state");
    fs::write(
        &state,
        format!(
            "dev={:x},ino={},mode=20666,uid=0,gid=5,nlink=1,rdev=259\n",
            m.dev(),
            m.ino()
        ),
    )
    .unwrap();
    let o = dockpack()
        .args(["layer", "-0", "--fakeroot"])
        .arg(&state)
        .arg("-C")
        .arg(&root)
        .write_stdin("./a b\nc\0./null\0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = t.path().join("l.tar");
    fs::write(&p, &o.stdout).unwrap();
    let listing = gnu_tar_list(&p);
    assert!(
        listing.lines().any(|l| l.starts_with("crw-rw-rw- 0/5 ")
            && l.contains(" 1,3 ")
            && l.ends_with(" null")),
        "{listing}"
    );
    assert!(listing.contains("a b\\nc"), "{listing}");
}

#[test]
fn closed_stdout_is_quiet() {
    let t = tempfile::tempdir().unwrap();
    let root = hello_tree(t.path(), "hi");
    // 8 MiB of sparse zeros: far more than a pipe holds, no disk used.
    fs::File::create(root.join("zeros"))
        .and_then(|f| f.set_len(8 << 20))
        .unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("dockpack"));
    cmd.arg("layer").arg("-C").arg(&root);
    testkit::assert_quiet_when_stdout_closed(cmd, b"./zeros\n".to_vec(), 10);
}

#[test]
fn oci_dir_failure_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("junk.tar");
    fs::write(&junk, vec![b'x'; 2048]).unwrap();
    let dir = t.path().join("oci");
    let o = dockpack()
        .args(["image", "--oci-dir"])
        .arg(&dir)
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!dir.exists());
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        1,
        "temporary directory left behind"
    );
    // And a good one is complete.
    let root = hello_tree(t.path(), "hi");
    let l = t.path().join("l.tar");
    layer(&root, &list(&root), &l);
    let o = dockpack()
        .args(["image", "--tag", "a/b:c", "--oci-dir"])
        .arg(&dir)
        .arg(&l)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = fs::read_to_string(dir.join("index.json")).unwrap();
    assert!(
        index.contains(r#""org.opencontainers.image.ref.name":"c""#),
        "{index}"
    );
    assert!(
        index.contains(r#""io.containerd.image.name":"docker.io/a/b:c""#),
        "{index}"
    );
    let manifest = fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(manifest.contains(r#""RepoTags":["a/b:c"]"#), "{manifest}");
}

/// `dockpack image` with stdout on `file` (a std `Command`, so that the
/// descriptor is the file itself, not a pipe).
fn image_into(args: &[&std::path::Path], file: fs::File) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin("dockpack"))
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["image", "--tag", "x:1", "--arch", "amd64"])
        .args(args)
        .stdout(file)
        .output()
        .unwrap()
}

/// A layer of a few MiB (several read chunks) holding `fill`.
fn big_layer(dir: &std::path::Path, name: &str, fill: u8) -> std::path::PathBuf {
    let root = dir.join(format!("{name}-root"));
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("big"), vec![fill; 3 << 20]).unwrap();
    fs::write(root.join("small"), [fill; 100]).unwrap();
    let l = dir.join(format!("{name}.tar"));
    layer(&root, &list(&root), &l);
    l
}

/// A regular file on stdout takes the one-pass path (header slot
/// reserved, header written after the data); a pipe takes the two-pass
/// path. The bytes must be the same, also with a layer given twice
/// (stored once: the one-pass writer drops what it wrote of the repeat),
/// when the file already holds bytes before the offset, and for
/// `O_APPEND` (which goes the two-pass way).
#[test]
fn image_to_a_file_is_the_image_to_a_pipe() {
    use std::io::{Seek, SeekFrom, Write};
    let t = tempfile::tempdir().unwrap();
    let a = big_layer(t.path(), "a", b'a');
    let b = big_layer(t.path(), "b", b'b');
    for layers in [vec![&a], vec![&a, &b], vec![&b, &a, &b], vec![&a, &a]] {
        let layers: Vec<&std::path::Path> = layers.iter().map(|p| p.as_path()).collect();
        let piped = dockpack()
            .args(["image", "--tag", "x:1", "--arch", "amd64"])
            .args(&layers)
            .output()
            .unwrap();
        assert!(piped.status.success());
        let img = piped.stdout;
        // A new file.
        let p = t.path().join("img.tar");
        let o = image_into(&layers, fs::File::create(&p).unwrap());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(fs::read(&p).unwrap() == img, "file differs from pipe");
        assert!(gnu_tar_list(&p).contains("manifest.json"));
        // A file with bytes before the offset, then more written after.
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(b"prefix").unwrap();
        let o = image_into(&layers, f.try_clone().unwrap());
        assert!(o.status.success());
        f.write_all(b"suffix").unwrap();
        let got = fs::read(&p).unwrap();
        assert!(got[..6] == *b"prefix" && got[6..got.len() - 6] == img[..]);
        assert_eq!(
            &got[got.len() - 6..],
            b"suffix",
            "offset not left at the end"
        );
        // O_APPEND.
        fs::write(&p, b"prefix").unwrap();
        let f = fs::OpenOptions::new().append(true).open(&p).unwrap();
        assert!(image_into(&layers, f).status.success());
        let got = fs::read(&p).unwrap();
        assert!(got[..6] == *b"prefix" && got[6..] == img[..]);
        // Bytes after the offset are not ours to cut: written over as a
        // stream would, the rest left alone.
        let junk = vec![b'j'; img.len() + 100];
        fs::write(&p, &junk).unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        assert!(image_into(&layers, f).status.success());
        let got = fs::read(&p).unwrap();
        assert!(got[..img.len()] == img[..] && got[img.len()..] == junk[img.len()..]);
    }
}

/// A bad layer found after its bytes went into the file (the one-pass
/// path only learns at the end that a tar is cut short): the file is cut
/// back to what it held before, one line on stderr, exit 1.
#[test]
fn bad_layer_into_a_file_leaves_the_file_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let a = big_layer(t.path(), "a", b'a');
    let bytes = fs::read(&a).unwrap();
    let cut = t.path().join("cut.tar");
    fs::write(&cut, &bytes[..bytes.len() - 1024]).unwrap();
    let torn = t.path().join("torn.tar");
    fs::write(&torn, &bytes[..2 << 20]).unwrap();
    let mut junk_tail = bytes.clone();
    let n = junk_tail.len();
    junk_tail[n - 1024] = b'x';
    let junk = t.path().join("junk-tail.tar");
    fs::write(&junk, &junk_tail).unwrap();
    let p = t.path().join("img.tar");
    for (layers, want) in [
        (vec![&cut], "cut.tar"),
        (vec![&a, &cut], "cut.tar"),
        (vec![&a, &torn], "torn.tar"),
        (vec![&junk], "junk-tail.tar"),
    ] {
        let layers: Vec<&std::path::Path> = layers.iter().map(|p| p.as_path()).collect();
        for prefix in [&b""[..], b"keep me\n"] {
            fs::write(&p, prefix).unwrap();
            let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).unwrap();
            let o = image_into(&layers, f);
            assert_eq!(o.status.code(), Some(1), "{layers:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(want) && err.lines().count() == 1,
                "{layers:?}: {err}"
            );
            assert_eq!(fs::read(&p).unwrap(), prefix, "{layers:?}: output left");
        }
    }
}

/// `--oci-dir` reads each layer once into its blob file; a repeated
/// layer is one blob, and the layout holds exactly the tar's blobs.
#[test]
fn oci_dir_blobs_are_the_tar_blobs() {
    use sha2::Digest as _;
    let t = tempfile::tempdir().unwrap();
    let a = big_layer(t.path(), "a", b'a');
    let b = big_layer(t.path(), "b", b'b');
    let dir = t.path().join("oci");
    let o = dockpack()
        .args(["image", "--tag", "x:1", "--arch", "amd64", "--oci-dir"])
        .arg(&dir)
        .args([&a, &b, &a])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = t.path().join("img.tar");
    let o = image_into(&[&a, &b, &a], fs::File::create(&img).unwrap());
    assert!(o.status.success());
    let x = t.path().join("x");
    fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&img)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    let names = |d: &std::path::Path| {
        let mut v: Vec<_> = fs::read_dir(d.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&dir), names(&x));
    assert_eq!(names(&dir).len(), 4, "2 layers, config, manifest");
    for n in names(&dir) {
        let p = std::path::Path::new("blobs/sha256").join(&n);
        let bytes = fs::read(dir.join(&p)).unwrap();
        assert!(bytes == fs::read(x.join(&p)).unwrap(), "{n:?}");
        assert_eq!(
            common::hex(&sha2::Sha256::digest(&bytes)),
            n.to_str().unwrap()
        );
    }
    for f in ["index.json", "manifest.json", "oci-layout"] {
        assert_eq!(fs::read(dir.join(f)).unwrap(), fs::read(x.join(f)).unwrap());
    }
}
