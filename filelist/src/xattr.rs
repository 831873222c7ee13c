//! A member's extended attributes: which ones a list carries, how they are
//! read from a tree, and their canonical digest (docs/DESIGN.md, "The list
//! format").
//!
//! The one reader for `fileids` and `dockpack layer`, called by the
//! resolver ([`crate::tree::Tree::resolve`]) with the parent directory
//! descriptor it already holds, so that no path is walked again:
//!
//! - The member's last component is named through that descriptor as
//!   `/proc/self/fd/PARENT/NAME` with `llistxattr(2)`/`lgetxattr(2)`: the
//!   kernel follows the `/proc` magic link to the directory that was
//!   reached without a symlink, then takes NAME (one component, checked
//!   by [`crate::tree::check_name`]) *without following it*, so a symlink
//!   member's own attributes are read, never its target's, and nothing
//!   outside the tree is reachable. The root itself is
//!   `/proc/self/fd/ROOT` with the following `listxattr(2)`, which goes
//!   through the magic link to the directory. `flistxattr` on the
//!   resolver's `O_PATH` descriptors fails with `EBADF` (still on
//!   Linux 6.18; `open(2)` lists what `O_PATH` descriptors serve, and
//!   the xattr calls are not among them), and opening each member for it would cost an `openat2` and a
//!   `close` per entry, and could not open a FIFO, socket or symlink.
//!   `listxattrat(2)` (Linux 6.13) would take the descriptor directly and skip the walk through `/proc`, but neither
//!   rustix 1.1 nor libc 0.2.191 has it (no wrapper, no `SYS_` number for
//!   x86_64) and older kernels lack it, so the `/proc` form is the one
//!   that works everywhere the resolver does (it needs `/proc` mounted,
//!   and says so). Changing directory into the parent to name it
//!   relatively would be cheaper still, but the working directory is the
//!   whole process's, and other threads and relative `-C`/output paths
//!   depend on it.
//! - The call looks NAME up again in that same directory, right after the
//!   resolver's `fstatat`: a file renamed over NAME in between gives its
//!   attributes, as a content change between listing and packing would
//!   give its bytes; the parent descriptor still keeps every lookup inside
//!   the tree, and `dockpack layer` still compares the content it opens by
//!   device and inode with what was examined.
//! - The cost is one `llistxattr` per member and one `lgetxattr` per
//!   attribute kept: a file with none costs one syscall.
//! - Bounded: a list of names is at most `XATTR_LIST_MAX` (64 KiB) and a
//!   value at most `XATTR_SIZE_MAX` (64 KiB), the kernel's own limits
//!   (`include/uapi/linux/limits.h`, `xattr(7)`), read into two reused
//!   buffers; the values kept for one member add up to at most
//!   [`MAX_TOTAL`], since `dockpack layer` holds them for one pax header.
//! - `ENOTSUP` (a filesystem without xattrs, `xattr(7)`) is an empty set;
//!   an attribute removed between the list and the read (`ENODATA`) is
//!   absent.
//!
//! Which namespaces ([`Policy`]), and why:
//!
//! - By default `security.capability` (file capabilities,
//!   `capabilities(7)`: what `setcap` writes, what `ping` needs),
//!   `user.*` (the user's own) and `trusted.*` (visible only to
//!   `CAP_SYS_ADMIN`, so a root run sees them and another does not).
//!   These are what an image must keep for its programs to behave.
//! - Other `security.*` attributes are labels (`security.selinux`,
//!   `security.SMACK64`, `security.ima`, `security.evm`) that belong to the
//!   host's policy, not to the files: they are read only with
//!   [`Policy::All`] (`--xattrs=all`).
//! - `system.*` never: `system.posix_acl_access`/`_default` are ACLs whose
//!   binary form holds raw uids and gids that neither `--owner` nor
//!   `--fakeroot` nor a list's authoritative UID/GID rewrite, so carrying
//!   them would let a list say "0644 root:root" while an ACL grants a
//!   build host's uid write access; GNU tar's `--xattrs` leaves them out
//!   too (they go in its separate `--acls` records). Other `system.*`
//!   names are filesystem internals (`system.data`, `system.nfs4_acl`).

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

/// `XATTR_SIZE_MAX`: the largest value the kernel stores or returns.
pub const XATTR_SIZE_MAX: usize = 65536;
/// `XATTR_LIST_MAX`: the longest list of names the kernel returns.
pub const XATTR_LIST_MAX: usize = 65536;
/// The buffer tried first for a list of names or a value: larger than
/// what files carry (a file capability is 20-24 bytes, a SELinux label
/// about 40), far below the kernel's limits.
const SMALL: usize = 1024;

/// The most value bytes kept for one member: `dockpack layer` writes
/// them into one pax header, which `dockpack image` (and other readers)
/// read into memory with a limit of 1 MiB; 256 KiB leaves room for the
/// names and the other records. Far above what filesystems store per
/// inode without ext4's `ea_inode` (one block, 4 KiB).
pub const MAX_TOTAL: usize = 256 << 10;

/// Which attributes are read (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// None: the list format of before, and no syscall.
    #[default]
    Off,
    /// `security.capability`, `user.*`, `trusted.*`.
    Default,
    /// Those and every other `security.*` label.
    All,
}

impl Policy {
    /// The policy `--no-xattrs` / `--xattrs=WHICH` ask for.
    pub fn from_args(args: &filtertool::args::XattrArgs) -> Policy {
        use filtertool::args::XattrWhich;
        match (args.no_xattrs, args.xattrs) {
            (true, _) => Policy::Off,
            (false, Some(XattrWhich::All)) => Policy::All,
            (false, _) => Policy::Default,
        }
    }

    /// Whether an attribute called `name` is read under this policy.
    pub fn wants(self, name: &[u8]) -> bool {
        match self {
            Policy::Off => false,
            Policy::Default => {
                name == b"security.capability"
                    || name.starts_with(b"user.")
                    || name.starts_with(b"trusted.")
            }
            Policy::All => {
                name.starts_with(b"security.")
                    || name.starts_with(b"user.")
                    || name.starts_with(b"trusted.")
            }
        }
    }
}

/// A member's attributes, sorted bytewise by name, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XattrSet {
    attrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl XattrSet {
    /// The set of these attributes; a name given twice keeps its last
    /// value.
    pub fn new(mut attrs: Vec<(Vec<u8>, Vec<u8>)>) -> XattrSet {
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of equal names: reverse, dedup keeps the first.
        attrs.reverse();
        attrs.dedup_by(|a, b| a.0 == b.0);
        attrs.reverse();
        XattrSet { attrs }
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Name and value pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.attrs.iter().map(|(n, v)| (&n[..], &v[..]))
    }

    /// The canonical encoding (docs/DESIGN.md, "The list format"): for
    /// each attribute in name order, the name's bytes, a NUL, the value's
    /// length as 8 bytes big-endian, the value's bytes. Names cannot
    /// hold NUL (`xattr(7)`: they are C strings), so the NUL ends a name
    /// and the length delimits any value: two different sets never encode
    /// alike.
    pub fn encode_into(&self, out: &mut impl sha2::digest::Update) {
        for (name, value) in &self.attrs {
            out.update(name);
            out.update(&[0]);
            out.update(&(value.len() as u64).to_be_bytes());
            out.update(value);
        }
    }

    /// The SHA-256 of the canonical encoding; `None` for the empty set,
    /// which a list line shows by having no `+` part.
    pub fn digest(&self) -> Option<[u8; 32]> {
        if self.attrs.is_empty() {
            return None;
        }
        let mut h = Sha256::new();
        self.encode_into(&mut h);
        Some(h.finalize().into())
    }
}

/// Why a member's attributes could not be read. The caller names the
/// member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub message: String,
    pub errno: Option<i32>,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReadError {}

fn os_error(what: &str, e: Errno) -> ReadError {
    let why = match e {
        Errno::NOENT if !std::path::Path::new("/proc/self/fd").is_dir() => {
            "/proc is not mounted, which reading xattrs needs (or use --no-xattrs)".to_string()
        }
        Errno::RANGE | Errno::TOOBIG => "larger than the kernel's 64 KiB limit".to_string(),
        e => {
            let s = std::io::Error::from(e).to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    };
    ReadError {
        message: format!("{what}: {why}"),
        errno: Some(e.raw_os_error()),
    }
}

/// Reads attributes with two reused 64 KiB buffers.
#[derive(Debug)]
pub struct Reader {
    policy: Policy,
    names: Vec<u8>,
    value: Vec<u8>,
    path: Vec<u8>,
}

impl Reader {
    pub fn new(policy: Policy) -> Reader {
        Reader {
            policy,
            names: Vec::new(),
            value: Vec::new(),
            path: Vec::new(),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The attributes of `base` in the directory `dir` (not following
    /// `base` if it is a symlink), or of `dir` itself when `base` is
    /// empty. `base` is one path component.
    pub fn read(&mut self, dir: BorrowedFd<'_>, base: &[u8]) -> Result<XattrSet, ReadError> {
        if self.policy == Policy::Off {
            return Ok(XattrSet::default());
        }
        if base.contains(&b'/') || base.contains(&0) || base == b".." {
            return Err(ReadError {
                message: "internal error: xattrs of a name that is not one component".into(),
                errno: None,
            });
        }
        self.path.clear();
        self.path
            .extend_from_slice(format!("/proc/self/fd/{}", dir.as_raw_fd()).as_bytes());
        let follow = base.is_empty();
        if !follow {
            self.path.push(b'/');
            self.path.extend_from_slice(base);
        }
        // A small buffer first: the kernel allocates one of the size
        // given for every call (fs/xattr.c, `listxattr`: kvmalloc of
        // up to XATTR_LIST_MAX), and most files have no attributes at
        // all; only a longer list is asked for again at the full size.
        // Measured on the Debian minbase tree (6.8k entries): 64 KiB
        // every time cost fileids about 20 ms of system time.
        let path = &self.path[..];
        let listed = small_first(&mut self.names, XATTR_LIST_MAX, |buf| {
            if follow {
                rustix::fs::listxattr(path, buf)
            } else {
                rustix::fs::llistxattr(path, buf)
            }
        });
        let n = match listed {
            Ok(n) => n,
            Err(Errno::NOTSUP) => 0,
            Err(e) => return Err(os_error("cannot list xattrs", e)),
        };
        let mut attrs = Vec::new();
        let mut total = 0usize;
        let names = std::mem::take(&mut self.names);
        let result = (|| {
            for name in names[..n.min(names.len())].split(|&b| b == 0) {
                if name.is_empty() || !self.policy.wants(name) {
                    continue;
                }
                // Small first, as for the list (fs/xattr.c, `getxattr`).
                let got = small_first(&mut self.value, XATTR_SIZE_MAX, |buf| {
                    if follow {
                        rustix::fs::getxattr(path, name, buf)
                    } else {
                        rustix::fs::lgetxattr(path, name, buf)
                    }
                });
                let len = match got {
                    Ok(len) => len,
                    // Removed since it was listed: absent.
                    Err(Errno::NODATA) => continue,
                    Err(e) => {
                        return Err(os_error(
                            &format!("cannot read xattr {}", crate::entry::quote(name)),
                            e,
                        ))
                    }
                };
                total += len;
                if total > MAX_TOTAL {
                    return Err(ReadError {
                        message: format!(
                            "xattr values add up to more than {} KiB",
                            MAX_TOTAL / 1024
                        ),
                        errno: None,
                    });
                }
                attrs.push((name.to_vec(), self.value[..len].to_vec()));
            }
            Ok(())
        })();
        self.names = names;
        result?;
        Ok(XattrSet::new(attrs))
    }
}

/// Calls `call` with `buf` at [`SMALL`] bytes, and again at `max` when
/// that was too small (ERANGE); EINTR is retried.
fn small_first(
    buf: &mut Vec<u8>,
    max: usize,
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<usize> {
    buf.resize(SMALL, 0);
    match retry(|| call(&mut buf[..])) {
        Err(Errno::RANGE) => {
            buf.resize(max, 0);
            retry(|| call(&mut buf[..]))
        }
        other => other,
    }
}

fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_namespaces() {
        for (name, default, all) in [
            (&b"security.capability"[..], true, true),
            (b"user.mime_type", true, true),
            (b"trusted.overlay.opaque", true, true),
            (b"security.selinux", false, true),
            (b"security.ima", false, true),
            (b"system.posix_acl_access", false, false),
            (b"system.data", false, false),
            (b"userx", false, false),
        ] {
            assert_eq!(Policy::Default.wants(name), default, "{name:?}");
            assert_eq!(Policy::All.wants(name), all, "{name:?}");
            assert!(!Policy::Off.wants(name));
        }
    }

    #[test]
    fn canonical_encoding_is_sorted_and_unambiguous() {
        let a = XattrSet::new(vec![
            (b"user.b".to_vec(), b"2".to_vec()),
            (b"user.a".to_vec(), b"1".to_vec()),
        ]);
        let b = XattrSet::new(vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), b"2".to_vec()),
        ]);
        assert_eq!(a.digest(), b.digest());
        let enc = Sha256::digest(b"user.a\0\0\0\0\0\0\0\0\x011user.b\0\0\0\0\0\0\0\0\x012");
        assert_eq!(a.digest(), Some(enc.into()));
        // A value that looks like the next attribute is not one.
        let c = XattrSet::new(vec![(
            b"user.a".to_vec(),
            b"1user.b\0\0\0\0\0\0\0\0\x012".to_vec(),
        )]);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(XattrSet::default().digest(), None);
        // An empty value is still an attribute.
        let e = XattrSet::new(vec![(b"user.a".to_vec(), Vec::new())]);
        assert!(e.digest().is_some());
    }
}
