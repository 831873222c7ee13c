//! The resolver of `filelist::tree` on its own: names refused, symlinks
//! in parents refused, a parent swapped after it was opened read from
//! the directory that was opened (inside the tree), content opened
//! through no symlink, DIR itself swapped, deep names, and the type,
//! owner and mtime rules.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use filelist::entry::{parse_fields, FileType};
use filelist::owner::{FakerootState, Ownership};
use filelist::tree::{Rules, Tree};

fn tree(dir: &Path) -> Tree {
    Tree::open(dir, Rules::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// `t/host` (mode 0751, `secret`, `link -> HOST`) beside `t/d`, the tree.
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::write(host.join("secret"), b"HOST").unwrap();
    symlink("HOST", host.join("link")).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(0o751)).unwrap();
    let d = t.path().join("d");
    fs::create_dir_all(d.join("a/sub")).unwrap();
    fs::write(d.join("a/x"), b"inside").unwrap();
    symlink("inside", d.join("a/link")).unwrap();
    symlink("../host", d.join("rel")).unwrap();
    symlink(&host, d.join("abs")).unwrap();
    (t, d)
}

#[test]
fn symlinked_parents_are_refused() {
    let (_t, d) = setup();
    let mut tr = tree(&d);
    for name in [
        &b"./abs/link"[..],
        b"./abs/sub",
        b"./rel/secret",
        b"rel/sub",
    ] {
        let e = tr.resolve(name, None).unwrap_err().to_string();
        assert!(
            e.starts_with("parent \"") && e.contains("\" is a symlink"),
            "{e}"
        );
    }
    // The symlinks themselves are members like any other.
    let m = tr.resolve(b"./abs", None).unwrap();
    assert_eq!(m.file_type, FileType::Symlink);
    assert_eq!(
        m.target.as_deref(),
        Some(
            d.parent()
                .unwrap()
                .join("host")
                .as_os_str()
                .as_encoded_bytes()
        )
    );
}

#[test]
fn names_that_leave_or_resolve_through_are_refused() {
    let (_t, d) = setup();
    let mut tr = tree(&d);
    for name in [
        &b"./abs/"[..],
        b"./rel/.",
        b"./a/../abs",
        b"../host/secret",
        b"/etc/shadow",
        b"",
        b"./a//x",
    ] {
        assert!(tr.resolve(name, None).is_err(), "{name:?}");
    }
}

/// The cache holds descriptors, not checked paths: `a` swapped for a
/// symlink to the host after `a/x` was resolved gives `a/link` from the
/// directory that was `a` (now `a.old`), and opening content by name
/// afterwards refuses the symlink.
#[test]
fn parent_swapped_after_use_reads_the_opened_directory() {
    let (_t, d) = setup();
    let mut tr = tree(&d);
    let x = tr.resolve(b"./a/x", None).unwrap();
    fs::rename(d.join("a"), d.join("a.old")).unwrap();
    symlink("../host", d.join("a")).unwrap();
    let link = tr.resolve(b"./a/link", None).unwrap();
    assert_eq!(link.target.as_deref(), Some(&b"inside"[..]));
    let sub = tr.resolve(b"./a/sub", None).unwrap();
    let inside = fs::metadata(d.join("a.old/sub")).unwrap();
    assert_eq!((sub.disk.dev, sub.disk.ino), (inside.dev(), inside.ino()));
    let e = tr.open_content(&x).unwrap_err().to_string();
    assert!(e.contains("symlink"), "{e}");
    // A fresh walk (another directory in between) refuses the symlink.
    tr.resolve(b"./rel", None).unwrap();
    let e = tr.resolve(b"./a/link", None).unwrap_err().to_string();
    assert!(e.contains("is a symlink"), "{e}");
}

/// A file swapped for a symlink between examining and opening it: the
/// open refuses the symlink; swapped for another file: the identity
/// check refuses it.
#[test]
fn content_swapped_after_examining_is_refused() {
    let (_t, d) = setup();
    let mut tr = tree(&d);
    let x = tr.resolve(b"./a/x", None).unwrap();
    let (mut f, now) = tr.open_content(&x).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!((s.as_str(), now.size), ("inside", 6));
    fs::remove_file(d.join("a/x")).unwrap();
    symlink("../../host/secret", d.join("a/x")).unwrap();
    assert!(tr.open_content(&x).is_err());
    fs::remove_file(d.join("a/x")).unwrap();
    fs::write(d.join("a/x"), b"other").unwrap();
    let e = tr.open_content(&x).unwrap_err().to_string();
    assert!(e.contains("replaced"), "{e}");
}

/// My own attack: DIR itself (and the directory holding it) swapped for a
/// symlink to the host after the tree was opened: names still resolve in
/// the directory that was opened.
#[test]
fn dir_itself_swapped_stays_the_opened_directory() {
    let (t, d) = setup();
    let mut tr = tree(&d);
    fs::rename(&d, t.path().join("d.old")).unwrap();
    symlink(t.path().join("host"), &d).unwrap();
    let m = tr.resolve(b"./a/x", None).unwrap();
    let (mut f, _) = tr.open_content(&m).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "inside");
    assert!(tr.resolve(b"./secret", None).is_err());
}

/// A name deeper than the cache keeps as one descriptor per level: the
/// rest is opened in one `openat2`, which still refuses a symlink.
#[test]
fn deep_names_resolve_and_refuse_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let mut rel = std::path::PathBuf::new();
    for i in 0..60 {
        rel.push(format!("d{i}"));
    }
    fs::create_dir_all(t.path().join(&rel)).unwrap();
    fs::write(t.path().join(&rel).join("f"), b"deep").unwrap();
    let mut tr = tree(t.path());
    let name = format!("./{}/f", rel.display());
    let m = tr.resolve(name.as_bytes(), None).unwrap();
    assert_eq!(m.disk.size, 4);
    // Swap a level below the cached ones for a symlink to its own copy.
    let mut upto = std::path::PathBuf::new();
    for i in 0..45 {
        upto.push(format!("d{i}"));
    }
    let p = t.path().join(&upto);
    fs::rename(&p, p.with_extension("old")).unwrap();
    symlink(p.with_extension("old"), &p).unwrap();
    let mut tr = tree(t.path());
    let e = tr.resolve(name.as_bytes(), None).unwrap_err().to_string();
    assert!(e.contains("symlink"), "{e}");
}

#[test]
fn missing_dir_or_file_as_dir_fails_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let e = Tree::open(&missing, Rules::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("-C \"{}\": No such file or directory", missing.display())
    );
    fs::write(t.path().join("f"), b"").unwrap();
    let e = Tree::open(t.path().join("f"), Rules::default())
        .unwrap_err()
        .to_string();
    assert!(e.ends_with(": Not a directory"), "{e}");
}

#[test]
fn rules_apply_once() {
    let (_t, d) = setup();
    let m = fs::metadata(d.join("a/x")).unwrap();
    let state = FakerootState::parse(
        format!(
            "dev={:x},ino={},mode=20644,uid=3,gid=4,nlink=1,rdev=259\n",
            m.dev(),
            m.ino()
        )
        .as_bytes(),
    )
    .unwrap();
    let rules = Rules {
        ownership: Ownership {
            owner: None,
            fakeroot: Some(state),
        },
        keep_mtime: true,
        epoch: 7,
        ..Rules::default()
    };
    let mut tr = Tree::open(&d, rules).unwrap();
    // The state's device over the regular file fakeroot's mknod leaves.
    let dev = tr.resolve(b"./a/x", None).unwrap();
    assert_eq!(dev.file_type, FileType::CharDevice);
    assert_eq!((dev.uid, dev.gid, dev.rdev), (3, 4, (1, 3)));
    assert!(!dev.has_content());
    // A list line that disagrees with the state, or the disk.
    let reg = parse_fields(
        b"0100644-0-0-0000000000000000000000000000000000000000000000000000000000000000",
    )
    .unwrap();
    let e = tr.resolve(b"./a/x", Some(&reg)).unwrap_err().to_string();
    assert_eq!(
        e,
        "the list says a regular file, but the fakeroot state says a character device"
    );
    let dir = parse_fields(b"0040755-0-0-0").unwrap();
    let e = tr.resolve(b"./a/link", Some(&dir)).unwrap_err().to_string();
    assert_eq!(e, "the list says a directory, but it is a symlink on disk");
    // The list is authoritative for mode and owner.
    let sub = tr.resolve(b"./a/sub", Some(&dir)).unwrap();
    assert_eq!((sub.mode, sub.uid, sub.gid), (0o40755, 0, 0));
    // --keep-mtime: a pre-1970 mtime is an error, not 0.
    let st = std::process::Command::new("touch")
        .args(["-h", "-d", "@-5"])
        .arg(d.join("a/link"))
        .status()
        .unwrap();
    assert!(st.success());
    let e = tr.resolve(b"./a/link", None).unwrap_err().to_string();
    assert_eq!(
        e,
        "mtime -5 is before 1970, which --keep-mtime cannot record"
    );
}
