//! Looking paths up inside a root directory as if it were `/`.
//!
//! `--root DIR` promises that nothing outside DIR is read, whatever the tree
//! holds: a container tree has absolute symlinks
//! (`lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...`) that mean
//! DIR/lib/..., and a hostile one may hold `../../..` links. So every
//! component is `lstat`ed and symlinks are followed here, by hand: an
//! absolute target starts again at the root, `..` stops at the root (as
//! chroot(2) and openat2's `RESOLVE_IN_ROOT` do), and after 40 links the
//! lookup fails as a loop (Linux's `MAXSYMLINKS`). Without `--root` the root
//! is `/` and the same code gives what the kernel gives.
//!
//! Files found are then opened with `O_NOFOLLOW`; a tree changed while we
//! read it is not defended against (openat2 with `RESOLVE_IN_ROOT` would be).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Linux's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

/// Why a lookup found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    NotDir,
    Loop,
    Denied,
    Other,
}

impl Miss {
    fn from_io(e: &io::Error) -> Miss {
        match e.kind() {
            io::ErrorKind::NotFound => Miss::NotFound,
            io::ErrorKind::NotADirectory => Miss::NotDir,
            io::ErrorKind::PermissionDenied => Miss::Denied,
            _ => Miss::Other,
        }
    }
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Miss::NotFound => "no such file or directory",
            Miss::NotDir => "not a directory",
            Miss::Loop => "too many levels of symbolic links",
            Miss::Denied => "permission denied",
            Miss::Other => "cannot be looked up",
        })
    }
}

/// A path that resolved.
#[derive(Clone, Debug)]
pub struct Found {
    /// Absolute inside the tree, every symlink resolved.
    pub canonical: Vec<u8>,
    /// `lstat` of the final file (never a symlink).
    pub meta: Metadata,
}

/// A directory tree seen as `/`.
pub struct Tree {
    root: PathBuf,
    /// Raw directory path → its canonical path, so that looking up many
    /// names in the same directories costs one `lstat` per name.
    dirs: HashMap<Vec<u8>, Result<Vec<u8>, Miss>>,
}

impl Tree {
    /// `root` is a host directory, already canonical (`/` for the host).
    pub fn new(root: PathBuf) -> Tree {
        Tree {
            root,
            dirs: HashMap::new(),
        }
    }

    /// The host path of a canonical in-tree path.
    pub fn host(&self, canonical: &[u8]) -> PathBuf {
        let rel: &[u8] = match canonical.iter().position(|&b| b != b'/') {
            Some(i) => canonical.get(i..).unwrap_or_default(),
            None => b"",
        };
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    /// Resolves an absolute in-tree path.
    pub fn resolve(&mut self, path: &[u8]) -> Result<Found, Miss> {
        let (dir, base) = split(path);
        if base.is_empty() || base == b"." || base == b".." {
            return self.walk(Vec::new(), path, &mut 0);
        }
        let start = self.dir(dir)?;
        self.walk(start, base, &mut 0)
    }

    /// The name under which `path` is printed with `--root`: the same
    /// file, spelt without `.` or `..` components. A `..` left in (from
    /// `$ORIGIN/..` or a DT_RUNPATH like `/../../opt/l`) would climb out of
    /// DIR when a consumer joins the printed path with it (`install -D
    /// "DIR/$f"`), and removing it by text is wrong once a symlink comes
    /// before it (`lib/..` is `/usr` when `lib -> usr/lib`). So the path up
    /// to its last `..` is resolved exactly as [`Tree::resolve`] resolves it
    /// (symlinks followed inside the tree, `..` stopping at the root), and
    /// what follows is kept as named, `.` and empty components dropped.
    /// Looking the result up finds the same file, since a lookup goes one
    /// component at a time.
    ///
    /// Only that prefix is resolved: a path without `..` stays the loader's
    /// own name (ld.so's `l_name`, which ldd prints). On a merged-/usr tree
    /// that keeps `/lib64/ld-linux-x86-64.so.2` rather than
    /// `/usr/lib64/...`: PT_INTERP names the former, and an image built
    /// from the list must hold it under that name. The last component is
    /// never resolved either: a symlinked library is printed under its own
    /// name, as ldd prints it, because the loader opens it by that name.
    pub fn printed_name(&mut self, path: &[u8]) -> Result<Vec<u8>, Miss> {
        let comps: Vec<&[u8]> = components(path).collect();
        let (mut out, rest) = match comps.iter().rposition(|&c| c == b"..") {
            Some(i) => {
                let (upto, rest) = comps.split_at(i + 1);
                let mut prefix = Vec::new();
                for c in upto {
                    prefix.push(b'/');
                    prefix.extend_from_slice(c);
                }
                (self.dir(&prefix)?, rest)
            }
            None => (Vec::new(), &comps[..]),
        };
        for &c in rest {
            if c != b"." {
                out.push(b'/');
                out.extend_from_slice(c);
            }
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }

    /// The canonical path of the in-tree directory `dir` ("" for the
    /// root), cached.
    fn dir(&mut self, dir: &[u8]) -> Result<Vec<u8>, Miss> {
        let canon_dir = match self.dirs.get(dir) {
            Some(r) => r.clone()?,
            None => {
                let r = self.walk(Vec::new(), dir, &mut 0).and_then(|f| {
                    if f.meta.is_dir() {
                        Ok(f.canonical)
                    } else {
                        Err(Miss::NotDir)
                    }
                });
                self.dirs.insert(dir.to_vec(), r.clone());
                r?
            }
        };
        Ok(if canon_dir == b"/" {
            Vec::new()
        } else {
            canon_dir
        })
    }

    /// The names in an in-tree directory (unsorted).
    pub fn read_dir(&mut self, dir: &[u8]) -> Result<Vec<Vec<u8>>, Miss> {
        let found = self.resolve(dir)?;
        if !found.meta.is_dir() {
            return Err(Miss::NotDir);
        }
        let entries = fs::read_dir(self.host(&found.canonical)).map_err(|e| Miss::from_io(&e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Miss::from_io(&e))?;
            names.push(entry.file_name().as_bytes().to_vec());
        }
        Ok(names)
    }

    /// Follows `path` from `out` (a canonical path, "" for the root).
    fn walk(&self, mut out: Vec<u8>, path: &[u8], links: &mut u32) -> Result<Found, Miss> {
        let mut pending: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
        let mut meta = None;
        while let Some(c) = pending.pop() {
            if c == b"." {
                continue;
            }
            if c == b".." {
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
                meta = None;
                continue;
            }
            let len = out.len();
            out.push(b'/');
            out.extend_from_slice(&c);
            let host = self.host(&out);
            let m = fs::symlink_metadata(&host).map_err(|e| Miss::from_io(&e))?;
            if m.file_type().is_symlink() {
                *links += 1;
                if *links > MAX_SYMLINKS {
                    return Err(Miss::Loop);
                }
                let target = fs::read_link(&host).map_err(|e| Miss::from_io(&e))?;
                let target = target.as_os_str().as_bytes();
                out.truncate(len);
                if target.first() == Some(&b'/') {
                    out.clear();
                }
                pending.extend(components(target).rev().map(<[u8]>::to_vec));
                meta = None;
                continue;
            }
            if !m.is_dir() && !pending.is_empty() {
                return Err(Miss::NotDir);
            }
            meta = Some(m);
        }
        let meta = match meta {
            Some(m) => m,
            None => fs::symlink_metadata(self.host(&out)).map_err(|e| Miss::from_io(&e))?,
        };
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(Found {
            canonical: out,
            meta,
        })
    }
}

/// A path's directory part and last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (
            path.get(..i).unwrap_or_default(),
            path.get(i + 1..).unwrap_or_default(),
        ),
        None => (&b""[..], path),
    }
}

fn components(p: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join("usr/lib/libx.so"), b"x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/lib/libx.so", root.join("abs")).unwrap();
        symlink("../../../../../../usr/lib/libx.so", root.join("usr/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let mut tree = Tree::new(root.clone());
        for p in [
            "/abs",
            "/usr/up",
            "/lib/../lib/libx.so",
            "/../../lib/libx.so",
        ] {
            let f = tree.resolve(p.as_bytes()).unwrap();
            assert_eq!(f.canonical, b"/usr/lib/libx.so", "{p}");
        }
        assert_eq!(tree.resolve(b"/loop").unwrap_err(), Miss::Loop);
        assert_eq!(tree.resolve(b"/abs/x").unwrap_err(), Miss::NotDir);
        assert_eq!(tree.resolve(b"/nope").unwrap_err(), Miss::NotFound);
        assert_eq!(tree.resolve(b"/").unwrap().canonical, b"/");
    }

    #[test]
    fn printed_names_have_no_dot_components() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("opt/l")).unwrap();
        fs::write(root.join("usr/lib/libx.so.1"), b"x").unwrap();
        symlink("libx.so.1", root.join("usr/lib/libx.so")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib", root.join("opt/abs")).unwrap();
        let mut tree = Tree::new(root.clone());
        for (p, want) in [
            (
                "/lib/../../../opt/l/../../usr/lib/libx.so.1",
                "/usr/lib/libx.so.1",
            ),
            ("/../../usr/./lib//libx.so.1", "/usr/lib/libx.so.1"),
            // A symlinked directory is followed: lib/.. is usr, not /.
            ("/lib/../lib/libx.so.1", "/usr/lib/libx.so.1"),
            ("/opt/abs/../lib/libx.so.1", "/usr/lib/libx.so.1"),
            // After the last `..`, names are kept: the file (a symlink
            // here) and directories (lib -> usr/lib) alike.
            ("/opt/l/../../lib/libx.so", "/lib/libx.so"),
            ("/lib/./libx.so.1", "/lib/libx.so.1"),
            ("//lib//libx.so", "/lib/libx.so"),
            ("/libz.so", "/libz.so"),
        ] {
            let got = tree.printed_name(p.as_bytes()).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), want, "{p}");
        }
        assert_eq!(
            tree.printed_name(b"/nope/../usr/lib/libx.so").unwrap_err(),
            Miss::NotFound
        );
    }
}
