//! Finding, and where missing creating, a mount point inside the container
//! root without ever leaving it.
//!
//! Mounting on a path follows symlinks, so a tree holding `mnt ->
//! ../../etc` could make a naive runner mount over a host directory. Here
//! the path is walked one component at a time from the root, never letting
//! the kernel follow a link: an absolute symlink restarts at the container
//! root (what the container itself would see), a `..` that would climb
//! above the root is an error, and missing components are created inside
//! the tree. The result has no symlinks left; the caller mounts on it.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What is to be mounted on the point: a directory tree or a single file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// The kernel's limit on symlinks followed in one lookup (path_resolution(7)).
const MAX_LINKS: u32 = 40;

fn push_reversed(stack: &mut Vec<OsString>, path: &Path) {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::ParentDir => parts.push(OsString::from("..")),
            Component::Normal(s) => parts.push(s.to_os_string()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    stack.extend(parts.into_iter().rev());
}

fn joined(done: &[OsString]) -> PathBuf {
    done.iter().collect()
}

/// Resolves `target` (read as an absolute path inside the root) under the
/// host directory `root`, creating what is missing where `create` allows,
/// and returns it as an absolute path inside the root (`/a/b`).
pub fn prepare(root: &Path, target: &Path, kind: Kind, create: bool) -> Result<PathBuf> {
    let shown = target.display();
    let mut pending = Vec::new();
    push_reversed(&mut pending, target);
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            if done.pop().is_none() {
                bail!("mount point {shown}: leads above the container root (a symlink or `..` escapes DIR)");
            }
            continue;
        }
        let last = pending.is_empty();
        let here = root.join(joined(&done)).join(&name);
        let inside = Path::new("/").join(joined(&done)).join(&name);
        match fs::symlink_metadata(&here) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("mount point {shown}: too many levels of symbolic links");
                }
                let dest = fs::read_link(&here).map_err(crate::os).with_context(|| {
                    format!("mount point {shown}: reading {}", inside.display())
                })?;
                if dest.is_absolute() {
                    done.clear();
                }
                push_reversed(&mut pending, &dest);
            }
            Ok(md) => {
                if !last && !md.is_dir() {
                    bail!(
                        "mount point {shown}: {} is not a directory",
                        inside.display()
                    );
                }
                if last && kind == Kind::Dir && !md.is_dir() {
                    bail!("mount point {shown}: not a directory, but a directory is to be mounted on it");
                }
                if last && kind == Kind::File && md.is_dir() {
                    bail!("mount point {shown}: a directory, but a file is to be mounted on it");
                }
                done.push(name);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => {
                bail!(
                    "mount point {shown}: {} does not exist in DIR, and with --rw chrootrun writes nothing into DIR (create it there, or drop --rw)",
                    inside.display()
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let made = if last && kind == Kind::File {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o644)
                        .open(&here)
                        .map(drop)
                } else {
                    DirBuilder::new().mode(0o755).create(&here)
                };
                made.map_err(crate::os).with_context(|| {
                    format!(
                        "creating mount point {} inside the container",
                        inside.display()
                    )
                })?;
                done.push(name);
            }
            Err(e) => {
                return Err(crate::os(e))
                    .with_context(|| format!("mount point {}", inside.display()));
            }
        }
    }
    Ok(Path::new("/").join(joined(&done)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_missing_directories_and_files() {
        let t = tempfile::tempdir().unwrap();
        let p = prepare(t.path(), Path::new("/a/b/c"), Kind::Dir, true).unwrap();
        assert_eq!(p, Path::new("/a/b/c"));
        assert!(t.path().join("a/b/c").is_dir());
        let p = prepare(t.path(), Path::new("/a/f"), Kind::File, true).unwrap();
        assert_eq!(p, Path::new("/a/f"));
        assert!(t.path().join("a/f").is_file());
        // Existing points are reused.
        assert_eq!(
            prepare(t.path(), Path::new("a/b/c"), Kind::Dir, true).unwrap(),
            Path::new("/a/b/c")
        );
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("real/run")).unwrap();
        symlink("/real", t.path().join("var")).unwrap();
        let p = prepare(t.path(), Path::new("/var/run/x"), Kind::Dir, true).unwrap();
        assert_eq!(p, Path::new("/real/run/x"));
        assert!(t.path().join("real/run/x").is_dir());
    }

    #[test]
    fn a_symlink_escaping_the_root_is_an_error_and_creates_nothing_outside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::create_dir(t.path().join("outside")).unwrap();
        symlink("../outside", root.join("esc")).unwrap();
        let e = prepare(&root, Path::new("/esc/sub"), Kind::Dir, true).unwrap_err();
        assert!(
            format!("{e:#}").contains("leads above the container root"),
            "{e:#}"
        );
        assert!(!t.path().join("outside/sub").exists());
        assert!(prepare(&root, Path::new("/../x"), Kind::Dir, true).is_err());
    }

    #[test]
    fn kind_mismatch_and_loops_are_errors() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("file"), "").unwrap();
        assert!(prepare(t.path(), Path::new("/file"), Kind::Dir, true).is_err());
        assert!(prepare(t.path(), Path::new("/file/x"), Kind::File, true).is_err());
        fs::create_dir(t.path().join("d")).unwrap();
        assert!(prepare(t.path(), Path::new("/d"), Kind::File, true).is_err());
        symlink("loop", t.path().join("loop")).unwrap();
        let e = prepare(t.path(), Path::new("/loop/x"), Kind::Dir, true).unwrap_err();
        assert!(format!("{e:#}").contains("too many levels"), "{e:#}");
    }
}
