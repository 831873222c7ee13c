//! Archive member names that cannot unpack outside the root.
//!
//! Lists name files as `find .` prints them (`./bin/hello`); archives want
//! them relative (`bin/hello`). A name that is absolute or has a `..`
//! component would make `cpio -i`, the kernel's initramfs unpacker or a
//! container engine write outside the target (the "zip slip" class of bug),
//! so the packers refuse such names instead of rewriting them. [`Tree`]
//! is the other half: reading a member from the source tree without a
//! symlink on the way leading outside it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

/// Turns a list name into a relative member name: `./` prefixes, `.` and
/// empty components are dropped. The root itself (`.`) gives an empty
/// name. Absolute names and `..` components are refused.
pub fn member_name(name: &[u8]) -> Result<Vec<u8>, &'static str> {
    if name.first() == Some(&b'/') {
        return Err("absolute name would unpack outside the root");
    }
    if name.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut out = Vec::with_capacity(name.len());
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("name with a '..' component would unpack outside the root"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// The parent of a member name (`a/b` → `a`, `a` → empty).
pub fn parent(member: &[u8]) -> &[u8] {
    match member.iter().rposition(|&b| b == b'/') {
        Some(i) => &member[..i],
        None => &[],
    }
}

/// The tree a packer reads its files from (`-C DIR`).
///
/// [`Tree::open`] opens a member without following a symlink anywhere on
/// the way (`openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
/// relative to DIR, opened once): a list that names `a/passwd` where the
/// tree has `a -> /etc` must not put the host's file into the archive,
/// and no check made before the open can rule out a parent swapped for a
/// symlink in between. Kernels before 5.6 lack `openat2` (ENOSYS), and
/// seccomp filters of older container runtimes answer EPERM; there only
/// the last component is checked (`O_NOFOLLOW`), on top of the packers'
/// own parent checks.
#[derive(Debug)]
pub struct Tree {
    dir: PathBuf,
    root: Option<File>,
}

impl Tree {
    pub fn new(dir: impl Into<PathBuf>) -> Tree {
        Tree {
            dir: dir.into(),
            root: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens `member` (relative, as [`member_name`] gives it) for reading.
    /// `O_NONBLOCK`: a name swapped for a FIFO since it was examined must
    /// not hang the open (no effect on regular files); `O_NOCTTY`: nor
    /// may a terminal become ours. A symlink on the way is an error whose
    /// message says so.
    pub fn open(&mut self, member: &[u8]) -> io::Result<File> {
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        let root = match &self.root {
            Some(root) => root.as_raw_fd(),
            None => {
                let root = File::options()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY)
                    .open(&self.dir)?;
                self.root.insert(root).as_raw_fd()
            }
        };
        let rel = CString::new(member).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // `struct open_how` of openat2(2).
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        };
        // SAFETY: `rel` is a NUL-terminated string and `how` an `open_how`
        // of the size passed, both alive for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if let Ok(fd) = i32::try_from(fd) {
            if fd >= 0 {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => File::options()
                .read(true)
                .custom_flags(flags)
                .open(self.dir.join(std::ffi::OsStr::from_bytes(member))),
            Some(libc::ELOOP) | Some(libc::EXDEV) => Err(io::Error::new(
                err.kind(),
                "the path goes through a symlink in the tree",
            )),
            _ => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(member_name(b"./bin/hello").unwrap(), b"bin/hello");
        assert_eq!(member_name(b".").unwrap(), b"");
        assert_eq!(member_name(b"./").unwrap(), b"");
        assert_eq!(member_name(b"a//b/./c").unwrap(), b"a/b/c");
        assert_eq!(member_name(b"./a b/\xff").unwrap(), b"a b/\xff");
        assert_eq!(member_name(b"./..foo").unwrap(), b"..foo");
    }

    #[test]
    fn refuses_escapes() {
        assert!(member_name(b"/etc/passwd").is_err());
        assert!(member_name(b"../x").is_err());
        assert!(member_name(b"./a/../../x").is_err());
        assert!(member_name(b"a/..").is_err());
    }

    #[test]
    fn tree_opens_members_but_not_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::create_dir_all(t.join("d/real")).unwrap();
        std::fs::write(t.join("d/real/f"), b"inside").unwrap();
        std::fs::create_dir_all(t.join("outside")).unwrap();
        std::fs::write(t.join("outside/secret"), b"host").unwrap();
        std::os::unix::fs::symlink(t.join("outside"), t.join("d/abs")).unwrap();
        std::os::unix::fs::symlink("real/f", t.join("d/last")).unwrap();
        let mut tree = Tree::new(t.join("d"));
        let mut text = String::new();
        io::Read::read_to_string(&mut tree.open(b"real/f").unwrap(), &mut text).unwrap();
        assert_eq!(text, "inside");
        for member in [&b"abs/secret"[..], b"last"] {
            let err = tree.open(member).unwrap_err();
            assert!(
                err.to_string().contains("symlink"),
                "{}: {err}",
                String::from_utf8_lossy(member)
            );
        }
        assert_eq!(
            tree.open(b"missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
    }
}
