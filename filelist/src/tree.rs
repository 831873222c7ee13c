//! The one way into a tree: input records (plain names or list lines)
//! resolved beneath `-C DIR` into members, symlink-proof.
//!
//! `fileids`, `mkinitrd` and `dockpack layer` read what a tree holds, and
//! the tree may be someone else's: a package's maintainer scripts ran in
//! it, or another user changes it while a tool runs. So nothing outside
//! DIR may be described or packed because of a name or a symlink:
//!
//! - DIR is opened once, as a descriptor ([`Tree::open`]); a missing DIR,
//!   or one that is not a directory, fails at start, naming it.
//! - Names are relative, canonical paths ([`check_name`]): no `..`, no
//!   leading `/`, no empty or `.` components, no trailing `/` or `/.`
//!   (which would resolve *through* the symlink they name, `path_resolution(7)`),
//!   as GNU tar and containerd refuse such member names. `.` is the root.
//! - Every parent directory is opened beneath DIR with `openat2(2)` and
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: the
//!   kernel follows no symlink and leaves DIR nowhere, whatever is swapped
//!   in between a check and a use, because there is no check apart from
//!   the use. The last component is then examined relative to that
//!   descriptor without following it (`fstatat(AT_SYMLINK_NOFOLLOW)`,
//!   `readlinkat`), and content is opened with `openat2` again, with
//!   `O_NOFOLLOW`, and compared by device and inode with what was examined.
//! - Parent descriptors are cached as a stack of open directories (one
//!   per component, the deepest ones merged), keyed by the descriptor and
//!   the name prefix it was reached by, never by a checked path: a name
//!   swapped for a symlink after its directory was opened changes nothing
//!   for the descriptor, which still reads the directory that was reached
//!   without a symlink (wherever a rename has since moved it). Sorted
//!   input enters each directory about once, so this costs two syscalls
//!   per directory (open, close) and none per file: one `fstatat` per
//!   member, as `lstat` was. On a Debian minbase tree (6,785 entries,
//!   727 directories; `strace -c -f`, Zen 3) `fileids` made 31,811
//!   syscalls against 30,877 with the old per-path `lstat`/`open`
//!   (+3%, the 727 opens and closes), `mkinitrd` 40,064 against 39,329
//!   (its old parent checks were one `lstat` per directory); CPU time
//!   and wall time stayed the same within the machine's noise, since each
//!   `fstatat` walks one component instead of the whole path.
//! - The rules that turn a record and what is on disk into a member's
//!   type, mode, owner and device number live here once ([`Rules`]): a
//!   list line is authoritative for mode and owner, `--fakeroot STATE`
//!   stands in for the disk where the state recorded the inode, `--owner`
//!   overrides every owner, and the type a list line or state gives must
//!   fit what is on disk ([`FileType::fits_on_disk`]) and each other.
//! - Extended attributes, where [`Rules::xattrs`] asks for them, are read
//!   right after the `fstatat` through the same parent descriptor, not
//!   following the name ([`crate::xattr`]), and a list line's `+XATTRS`
//!   digest must match them, as its content digest must match the
//!   content.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

use crate::entry::{quote, Digest, Fields, FileType};
use crate::owner::{Ownership, Stat};
use crate::xattr::{Policy, Reader, XattrSet};

/// Why a name is refused before the tree is looked at. The same text in
/// every tool; the caller adds where the name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    Absolute,
    Nul,
    DotDot,
    Trailing,
    NotCanonical,
}

impl NameError {
    pub fn message(self) -> &'static str {
        match self {
            NameError::Empty => "empty name",
            NameError::Absolute => "absolute name: names are relative to the tree",
            NameError::Nul => "name contains a NUL byte",
            NameError::DotDot => "name with a '..' component: it would leave the tree",
            NameError::Trailing => {
                "name ends in '/' or '/.': it would be resolved through what it names"
            }
            NameError::NotCanonical => "name with an empty or '.' component",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for NameError {}

/// Checks a name as `find .` prints it (`.`, `./bin/sh`, or without the
/// `./`: `bin/sh`) and gives the member path below the root: `bin/sh`,
/// empty for the root itself.
pub fn check_name(name: &[u8]) -> Result<&[u8], NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == b"." {
        return Ok(&[]);
    }
    if name[0] == b'/' {
        return Err(NameError::Absolute);
    }
    if name.contains(&0) {
        return Err(NameError::Nul);
    }
    let rest = name.strip_prefix(b"./").unwrap_or(name);
    if rest.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err(NameError::DotDot);
    }
    if rest.is_empty() || rest == b"." || rest.ends_with(b"/") || rest.ends_with(b"/.") {
        return Err(NameError::Trailing);
    }
    if rest
        .split(|&b| b == b'/')
        .any(|c| c.is_empty() || c == b".")
    {
        return Err(NameError::NotCanonical);
    }
    Ok(rest)
}

/// A member's name split into its parent (`a/b`) and last component (`c`).
fn split_parent(member: &[u8]) -> (&[u8], &[u8]) {
    match member.iter().rposition(|&b| b == b'/') {
        Some(i) => (&member[..i], &member[i + 1..]),
        None => (&[], member),
    }
}

/// Why a record could not become a member. Its text says what failed
/// and why, without the name, which the caller puts in front.
#[derive(Debug)]
pub struct ResolveError {
    message: String,
    errno: Option<Errno>,
}

impl ResolveError {
    fn new(message: impl Into<String>) -> ResolveError {
        ResolveError {
            message: message.into(),
            errno: None,
        }
    }

    fn os(what: impl fmt::Display, errno: Errno) -> ResolveError {
        let why = match errno {
            // Kernels before 5.6 lack openat2(2); without it no name can
            // be resolved with the guarantees above, so say so.
            Errno::ENOSYS => "openat2(2) is not available (Linux 5.6 or later is needed)",
            e => e.desc(),
        };
        ResolveError {
            message: format!("{what}: {why}"),
            errno: Some(errno),
        }
    }

    /// The system error behind it, if one is.
    pub fn errno(&self) -> Option<i32> {
        self.errno.map(|e| e as i32)
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ResolveError {}

impl From<NameError> for ResolveError {
    fn from(e: NameError) -> ResolveError {
        ResolveError::new(e.message())
    }
}

/// `-C DIR` could not be opened as a directory.
#[derive(Debug)]
pub struct DirError {
    pub dir: PathBuf,
    pub errno: Errno,
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "-C {}: {}",
            quote(self.dir.as_os_str().as_bytes()),
            self.errno.desc()
        )
    }
}

impl std::error::Error for DirError {}

/// How records become members: ownership (`--owner`, `--fakeroot`) and
/// the mtime rule (`SOURCE_DATE_EPOCH`, or the file's own with
/// `--keep-mtime`).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub ownership: Ownership,
    pub keep_mtime: bool,
    /// The mtime of every member unless `keep_mtime`.
    pub epoch: u64,
    /// Which extended attributes are read ([`crate::xattr`]); with
    /// [`Policy::Off`] none, and a list line's xattr digest goes unchecked.
    pub xattrs: Policy,
}

/// What `fstatat` saw of a member on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskStat {
    pub dev: u64,
    pub ino: u64,
    /// `st_mode`, type bits included.
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub mtime: i64,
    pub ctime: (i64, i64),
}

impl DiskStat {
    /// From a `stat(2)` result.
    pub fn from_stat(st: &FileStat) -> DiskStat {
        DiskStat {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    fn owner_stat(&self) -> Stat {
        Stat {
            dev: self.dev,
            ino: self.ino,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
        }
    }
}

/// One record turned into a member: what to record and where it is.
#[derive(Clone, Debug)]
pub struct Member {
    /// The path below the root (`bin/sh`; empty for the root).
    pub path: Vec<u8>,
    /// A whiteout line of `layerdiff --whiteouts`: nothing on disk.
    pub whiteout: bool,
    /// The type to record: the list's, else the fakeroot state's, else
    /// the disk's.
    pub file_type: FileType,
    /// `st_mode` to record, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The device number to record (major, minor).
    pub rdev: (u32, u32),
    /// The SHA-256 a list line gives for a regular file's content or a
    /// symlink's target: what the content must still hash to.
    pub expect: Option<[u8; 32]>,
    /// The mtime to record ([`Rules`]).
    pub mtime: u64,
    /// What is on disk (zeros for a whiteout).
    pub disk: DiskStat,
    /// A symlink's target, read when it was examined.
    pub target: Option<Vec<u8>>,
    /// The extended attributes read from the disk under
    /// [`Rules::xattrs`] (empty when off, and for a whiteout). When a
    /// list line gave an xattr digest, these matched it.
    pub xattrs: XattrSet,
}

impl Member {
    /// The list fields of this member, as `fileids` prints them; for a
    /// regular file the digest is the caller's to fill in.
    pub fn fields(&self, content: Option<[u8; 32]>) -> Fields {
        use sha2::Digest as _;
        let digest = if self.whiteout {
            Digest::Whiteout
        } else {
            match self.file_type {
                FileType::Regular => content.map_or(Digest::Zero, Digest::Sha256),
                FileType::Symlink => Digest::Sha256(
                    sha2::Sha256::digest(self.target.as_deref().unwrap_or_default()).into(),
                ),
                FileType::CharDevice | FileType::BlockDevice => Digest::Device {
                    major: self.rdev.0,
                    minor: self.rdev.1,
                },
                FileType::Directory | FileType::Fifo | FileType::Socket => Digest::Zero,
            }
        };
        Fields {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            digest,
            xattrs: if self.whiteout {
                None
            } else {
                self.xattrs.digest()
            },
        }
    }

    /// Whether the disk holds content for this member: a regular file
    /// recorded as one (not a device that fakeroot's `mknod` left as an
    /// empty file).
    pub fn has_content(&self) -> bool {
        !self.whiteout
            && self.file_type == FileType::Regular
            && self.disk.file_type() == Some(FileType::Regular)
    }
}

/// The part of a [`Tree`] that worker threads share to open content.
#[derive(Clone, Debug)]
pub struct Opener {
    root: Arc<OwnedFd>,
}

impl Opener {
    /// Opens a member's content for reading, beneath the root, following
    /// no symlink on the way or at the end. `O_NONBLOCK`: a name swapped
    /// for a FIFO since it was examined must not hang the open (no effect
    /// on regular files); `O_NOCTTY`: nor may a terminal become ours.
    /// The caller compares an `fstat` of the file with [`Member::disk`]
    /// (or uses [`Tree::open_content`], which does).
    pub fn open_unchecked(&self, member: &Member) -> Result<File, ResolveError> {
        if member.path.is_empty() {
            return Err(ResolveError::new("the root has no content"));
        }
        let how = OpenHow::new()
            .flags(
                OFlag::O_RDONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_NONBLOCK
                    | OFlag::O_NOCTTY
                    | OFlag::O_CLOEXEC,
            )
            .resolve(beneath());
        match retry(|| openat2(self.root.as_fd(), &member.path[..], how)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(e @ (Errno::ELOOP | Errno::EXDEV)) => Err(ResolveError {
                message: "cannot open: the path now goes through a symlink".into(),
                errno: Some(e),
            }),
            Err(e) => Err(ResolveError::os("cannot open", e)),
        }
    }
}

/// `RESOLVE_BENEATH`: nothing outside the directory descriptor;
/// `RESOLVE_NO_SYMLINKS` (which implies `RESOLVE_NO_MAGICLINKS`, named
/// too for the reader): no symlink anywhere on the way (`openat2(2)`).
fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// Retries on `EINTR` and on the `EAGAIN` that `openat2(2)` documents for
/// `RESOLVE_BENEATH` when a concurrent rename might have let `..` escape
/// (we never resolve `..`, but the kernel may still answer so).
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

/// At most this many directories are cached as one descriptor each; the
/// rest of a deeper parent is opened in one `openat2` from the deepest
/// one, so a hostile name with thousands of components costs no more
/// than this many descriptors.
const MAX_DEPTH: usize = 32;

/// A tree to read members from: `-C DIR` held as a descriptor.
#[derive(Debug)]
pub struct Tree {
    dir: PathBuf,
    root: Arc<OwnedFd>,
    rules: Rules,
    /// Open directories below the root, outermost first: each is the
    /// directory `prefix[..end]` was resolved to when it was opened.
    stack: Vec<(usize, OwnedFd)>,
    prefix: Vec<u8>,
    xattrs: Reader,
}

impl Tree {
    /// Opens DIR (following a symlink that DIR itself is, as the user
    /// named it) as the root all names are resolved beneath.
    pub fn open(dir: impl Into<PathBuf>, rules: Rules) -> Result<Tree, DirError> {
        let dir = dir.into();
        let root = retry(|| {
            nix::fcntl::open(
                &dir,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        })
        .map_err(|errno| DirError {
            dir: dir.clone(),
            errno,
        })?;
        Ok(Tree {
            dir,
            root: Arc::new(root),
            xattrs: Reader::new(rules.xattrs),
            rules,
            stack: Vec::new(),
            prefix: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A handle for other threads to open content with.
    pub fn opener(&self) -> Opener {
        Opener {
            root: Arc::clone(&self.root),
        }
    }

    /// Resolves a packer's input record: a list line's fields are
    /// authoritative, a plain name is described from the disk.
    pub fn resolve_input(&mut self, input: &crate::Input) -> Result<Member, ResolveError> {
        match input {
            crate::Input::Name(name) => self.resolve(name, None),
            crate::Input::Entry(e) => self.resolve(&e.name, Some(&e.fields)),
        }
    }

    /// Resolves `name`, with the fields of its list line if it is one.
    pub fn resolve(
        &mut self,
        name: &[u8],
        listed: Option<&Fields>,
    ) -> Result<Member, ResolveError> {
        let path = check_name(name)?;
        if let Some(f) = listed.filter(|f| f.is_whiteout()) {
            return Ok(Member {
                path: path.to_vec(),
                whiteout: true,
                file_type: FileType::Regular,
                mode: f.mode,
                uid: 0,
                gid: 0,
                rdev: (0, 0),
                expect: None,
                mtime: self.rules.epoch,
                disk: DiskStat {
                    dev: 0,
                    ino: 0,
                    mode: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    size: 0,
                    mtime: 0,
                    ctime: (0, 0),
                },
                target: None,
                xattrs: XattrSet::default(),
            });
        }
        let (st, target, xattrs) = if path.is_empty() {
            let st = fstat(self.root.as_fd()).map_err(|e| ResolveError::os("cannot stat", e))?;
            let xattrs = self.xattrs.read(self.root.as_fd(), b"");
            (DiskStat::from_stat(&st), None, xattrs)
        } else {
            let (parent, base) = split_parent(path);
            // Out of `self` while `dir` borrows it (no allocation: an
            // empty reader holds no buffers).
            let mut reader = std::mem::replace(&mut self.xattrs, Reader::new(Policy::Off));
            let found = (|| {
                let dir = self.parent(parent)?;
                let st = retry(|| fstatat(dir, base, AtFlags::AT_SYMLINK_NOFOLLOW))
                    .map_err(|e| ResolveError::os("cannot stat", e))?;
                let st = DiskStat::from_stat(&st);
                let target = if st.file_type() == Some(FileType::Symlink) {
                    let t = retry(|| readlinkat(dir, base))
                        .map_err(|e| ResolveError::os("cannot read the link", e))?;
                    Some(t.into_encoded_bytes())
                } else {
                    None
                };
                // Right after the `fstatat`, through the same parent
                // descriptor, not following the name ([`crate::xattr`]).
                let xattrs = reader.read(dir, base);
                Ok::<_, ResolveError>((st, target, xattrs))
            })();
            self.xattrs = reader;
            found?
        };
        let xattrs = xattrs.map_err(|e| ResolveError {
            message: e.message,
            errno: e.errno.map(Errno::from_raw),
        })?;
        if let Some(f) = listed.filter(|_| self.rules.xattrs != Policy::Off) {
            // Checked as content is: the list is authoritative, and a
            // tree whose attributes differ is not the tree it describes.
            let got = xattrs.digest();
            if got != f.xattrs {
                let says = |d: Option<[u8; 32]>| match d {
                    None => "none".to_string(),
                    Some(d) => format!(
                        "SHA-256 {}",
                        String::from_utf8_lossy(&crate::hex::encode32(&d))
                    ),
                };
                let names = xattrs
                    .iter()
                    .map(|(n, _)| quote(n))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ResolveError::new(format!(
                    "its xattrs differ from the list's (the list says {}, the tree has {}{}{})",
                    says(f.xattrs),
                    says(got),
                    if names.is_empty() { "" } else { ": " },
                    names
                )));
            }
        }
        let mut member = self.rules.describe(path, &st, listed)?;
        member.target = target;
        member.xattrs = xattrs;
        Ok(member)
    }

    /// Opens a member's content and checks that it is the file that was
    /// examined (same device and inode, still a regular file); gives it
    /// with what `fstat` says of it now.
    pub fn open_content(&self, member: &Member) -> Result<(File, DiskStat), ResolveError> {
        let file = self.opener().open_unchecked(member)?;
        let now = fstat(file.as_fd()).map_err(|e| ResolveError::os("cannot stat", e))?;
        let now = DiskStat::from_stat(&now);
        if (now.dev, now.ino) != (member.disk.dev, member.disk.ino)
            || now.file_type() != Some(FileType::Regular)
        {
            return Err(ResolveError::new(
                "was replaced by another file while being read",
            ));
        }
        Ok((file, now))
    }

    /// The descriptor of `parent` (a member path; empty for the root),
    /// from the cache where it holds the directory or one above it.
    fn parent(&mut self, parent: &[u8]) -> Result<BorrowedFd<'_>, ResolveError> {
        // Keep the cached directories that are whole-component prefixes
        // of `parent`.
        let keep = self
            .stack
            .iter()
            .take_while(|(end, _)| {
                parent.len() >= *end
                    && parent[..*end] == self.prefix[..*end]
                    && (parent.len() == *end || parent[*end] == b'/')
            })
            .count();
        self.stack.truncate(keep);
        self.prefix
            .truncate(self.stack.last().map_or(0, |(end, _)| *end));
        while self.prefix.len() < parent.len() {
            let start = if self.prefix.is_empty() {
                0
            } else {
                self.prefix.len() + 1
            };
            let end = if self.stack.len() + 1 >= MAX_DEPTH {
                parent.len()
            } else {
                parent[start..]
                    .iter()
                    .position(|&b| b == b'/')
                    .map_or(parent.len(), |i| start + i)
            };
            let at = match self.stack.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(beneath());
            let fd = match retry(|| openat2(at, &parent[start..end], how)) {
                Ok(fd) => fd,
                Err(e) => return Err(parent_error(at, &parent[..end], &parent[start..end], e)),
            };
            self.prefix.clear();
            self.prefix.extend_from_slice(&parent[..end]);
            self.stack.push((end, fd));
        }
        Ok(match self.stack.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.as_fd(),
        })
    }
}

/// Says which parent stopped the walk, and how.
fn parent_error(at: BorrowedFd<'_>, upto: &[u8], rel: &[u8], e: Errno) -> ResolveError {
    match e {
        Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR => {
            // Only to word the message, the walk having stopped, and only
            // for a single component, which `AT_SYMLINK_NOFOLLOW` keeps
            // in the directory.
            let kind = if rel.contains(&b'/') {
                None
            } else {
                fstatat(at, rel, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .ok()
                    .and_then(|st| FileType::from_mode(st.st_mode))
            };
            let what = match kind {
                Some(FileType::Symlink) => "a symlink",
                Some(FileType::Directory) | None => "reached through a symlink",
                Some(_) => "not a directory",
            };
            ResolveError {
                message: format!(
                    "parent {} is {what}: refusing to read through it",
                    quote(upto)
                ),
                errno: Some(e),
            }
        }
        e => ResolveError::os(format_args!("parent {}", quote(upto)), e),
    }
}

impl Rules {
    /// The type rules, once: what a record and the disk make a member.
    fn describe(
        &self,
        path: &[u8],
        disk: &DiskStat,
        listed: Option<&Fields>,
    ) -> Result<Member, ResolveError> {
        let on_disk = disk.file_type();
        let disk_name = on_disk.map_or("of unknown type", FileType::name);
        let real = disk.owner_stat();
        let eff = self.ownership.apply(&real);
        let faked = self
            .ownership
            .fakeroot
            .as_ref()
            .and_then(|s| s.get(disk.dev, disk.ino));
        let (file_type, mode, uid, gid, rdev, expect) = match listed {
            None => {
                let kind = FileType::from_mode(eff.mode).ok_or_else(|| {
                    ResolveError::new(format!("unknown file type in mode {:o}", eff.mode))
                })?;
                if !kind.fits_on_disk(on_disk) {
                    return Err(ResolveError::new(format!(
                        "the fakeroot state says {}, but it is {disk_name} on disk",
                        kind.name()
                    )));
                }
                let rdev = (crate::owner::major(eff.rdev), crate::owner::minor(eff.rdev));
                (kind, eff.mode, eff.uid, eff.gid, rdev, None)
            }
            Some(f) => {
                let kind = f.file_type().ok_or_else(|| {
                    ResolveError::new(format!("unknown file type in mode {:o}", f.mode))
                })?;
                if !kind.fits_on_disk(on_disk) {
                    return Err(ResolveError::new(format!(
                        "the list says {}, but it is {disk_name} on disk",
                        kind.name()
                    )));
                }
                if let Some(state) = faked.and_then(|s| FileType::from_mode(s.mode)) {
                    if state != kind {
                        return Err(ResolveError::new(format!(
                            "the list says {}, but the fakeroot state says {}",
                            kind.name(),
                            state.name()
                        )));
                    }
                }
                let (uid, gid) = self.ownership.owner.unwrap_or((f.uid, f.gid));
                let rdev = match f.digest {
                    Digest::Device { major, minor } => (major, minor),
                    _ => (0, 0),
                };
                let expect = match f.digest {
                    Digest::Sha256(d) => Some(d),
                    _ => None,
                };
                (kind, f.mode, uid, gid, rdev, expect)
            }
        };
        let mtime = if self.keep_mtime {
            u64::try_from(disk.mtime).map_err(|_| {
                ResolveError::new(format!(
                    "mtime {} is before 1970, which --keep-mtime cannot record",
                    disk.mtime
                ))
            })?
        } else {
            self.epoch
        };
        Ok(Member {
            path: path.to_vec(),
            whiteout: false,
            file_type,
            mode,
            uid,
            gid,
            rdev,
            expect,
            mtime,
            disk: *disk,
            target: None,
            xattrs: XattrSet::default(),
        })
    }

    /// Describes a file outside any tree that the user named on the
    /// command line (`mkinitrd --add`), with the same rules.
    pub fn describe_host(
        &self,
        path: &[u8],
        meta: &std::fs::Metadata,
    ) -> Result<Member, ResolveError> {
        use std::os::unix::fs::MetadataExt;
        let disk = DiskStat {
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            nlink: meta.nlink(),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev(),
            size: meta.size(),
            mtime: meta.mtime(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        self.describe(path, &disk, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name(b"."), Ok(&b""[..]));
        assert_eq!(check_name(b"./bin/sh"), Ok(&b"bin/sh"[..]));
        assert_eq!(check_name(b"bin/sh"), Ok(&b"bin/sh"[..]));
        assert_eq!(check_name(b"./a b/\xff"), Ok(&b"a b/\xff"[..]));
        assert_eq!(check_name(b"./..foo"), Ok(&b"..foo"[..]));
        for (bad, why) in [
            (&b""[..], NameError::Empty),
            (b"/etc/shadow", NameError::Absolute),
            (b"//x", NameError::Absolute),
            (b"..", NameError::DotDot),
            (b"./..", NameError::DotDot),
            (b"./r/../etc/shadow", NameError::DotDot),
            (b"./../../../../etc/shadow", NameError::DotDot),
            (b"a/..", NameError::DotDot),
            (b"./", NameError::Trailing),
            (b"./.", NameError::Trailing),
            (b"./abs/", NameError::Trailing),
            (b"./r/.", NameError::Trailing),
            (b"a//b", NameError::NotCanonical),
            (b"a/./b", NameError::NotCanonical),
            (b"././a", NameError::NotCanonical),
            (b"a\0b", NameError::Nul),
        ] {
            assert_eq!(check_name(bad), Err(why), "{}", quote(bad));
        }
    }
}
