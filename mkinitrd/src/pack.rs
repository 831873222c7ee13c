//! What each input record becomes in the archive.
//!
//! The rules, and why:
//!
//! - Every record goes through `filelist::tree`, the one resolver: names
//!   (`./bin/sh` → `bin/sh`; absolute names, `..`, trailing `/` refused,
//!   never rewritten) are looked up beneath `-C DIR` through no symlink,
//!   and the type, mode, owner and device rules are applied there. The
//!   root (`.` from `find .`) is written as the member `.`, exactly as
//!   `find . | cpio -o -H newc` writes it: the kernel's unpacker
//!   (`init/initramfs.c`, `do_name`) then applies its mode and owner to the
//!   initramfs root (its `mkdir` fails with EEXIST, the `chown`/`chmod`
//!   still run), and GNU `cpio -i` does the same to the target directory.
//! - Records must come sorted, without duplicates, as `layerdiff` wants
//!   its lists (the same check and message): `cpio -i` and the kernel
//!   need a directory before what it holds.
//! - Mode, uid and gid come from a list line when the record is one (the
//!   list is authoritative), else from `lstat` after `--fakeroot`;
//!   `--owner` overrides the owner of every member. A list line's type
//!   must agree with the file's and with the fakeroot state's (a device
//!   made by `mknod` under fakeroot, an empty file on disk, passes).
//! - A list line's SHA-256 is checked while the data streams into the
//!   archive; a mismatch is an error after the fact, which is why a failed
//!   archive never gets its trailer. A size change is always an error (the
//!   newc writer checks the byte count), list line or not.
//! - Inode numbers are assigned 1, 2, 3... in input order; dev is 0.
//!   `nlink` is 2 for directories, 1 for everything else except hard links.
//! - Hard links (regular files with `st_nlink > 1`, keyed by the real
//!   device and inode) are written as GNU cpio writes newc: the links of
//!   one inode share one inode number and only the LAST link carries the
//!   data, so the earlier links are held back (names and attributes only)
//!   until the last one is read and the whole set is written at its place.
//!   Memory is thus bounded by the hard-link sets still open. A set of
//!   which the input names fewer links than `st_nlink` is only known to be
//!   partial at the end: such sets are written after all other entries, in
//!   the order their first link appeared, data on the last link listed —
//!   GNU cpio's `writeout_final_defers` — with `nlink` the number of links
//!   actually in the archive. Both `cpio -i` and the kernel accept data on
//!   any link of a set.
//! - mtime is `SOURCE_DATE_EPOCH` (0 if unset) unless `--keep-mtime`.
//! - newc sizes are 32-bit: a file over 4 GiB is refused by name.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use filelist::entry::{quote, FileType, Input};
use filelist::owner::Ownership;
use filelist::tree::{Member, Rules, Tree};
use sha2::{Digest as _, Sha256};

use crate::newc::{Header, Writer};

/// The largest file newc can hold: `filesize` is 8 hex digits.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// Everything the packer needs besides its input.
#[derive(Debug, Default)]
pub struct Options {
    /// Names on stdin are relative to this directory.
    pub dir: PathBuf,
    pub ownership: Ownership,
    pub keep_mtime: bool,
    /// The mtime of every member unless `keep_mtime`.
    pub epoch: u32,
}

/// One `--add ARCHIVE_PATH=HOST_FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// The normalised member name.
    pub member: Vec<u8>,
    pub host: PathBuf,
}

impl Add {
    /// Splits at the FIRST `=`, so HOST_FILE may contain `=` (ARCHIVE_PATH
    /// cannot). ARCHIVE_PATH must be a relative name below the root.
    pub fn parse(text: &[u8]) -> Result<Add, String> {
        let bad = |why: &str| format!("--add {}: {why} (want ARCHIVE_PATH=HOST_FILE)", quote(text));
        let eq = text
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no '='"))?;
        let (path, host) = (&text[..eq], &text[eq + 1..]);
        if host.is_empty() {
            return Err(bad("empty HOST_FILE"));
        }
        let member = filelist::archive::member_name(path).map_err(bad)?;
        if member.is_empty() {
            return Err(bad("ARCHIVE_PATH must name a file below the root"));
        }
        Ok(Add {
            member,
            host: PathBuf::from(OsStr::from_bytes(host)),
        })
    }
}

/// Where a regular file's data comes from.
#[derive(Clone)]
enum Source {
    /// A member of the tree, opened through the resolver.
    Tree(Box<Member>),
    /// A `--add` host file, named by the user.
    Host(PathBuf),
}

/// One link of a hard-link set that is held back until the set is complete.
struct Link {
    header: Header,
    source: Source,
    label: Vec<u8>,
    expect: Option<[u8; 32]>,
}

/// The links of one multiply-linked inode seen so far.
struct Group {
    ino: u32,
    /// `st_nlink` when the first link was seen.
    nlink: u64,
    /// Order of first appearance, for the sets written at the end.
    first: u64,
    dev: u64,
    disk_ino: u64,
    links: Vec<Link>,
}

/// Turns records into archive members on a [`Writer`].
pub struct Packer<'a, W: Write> {
    out: Writer<W>,
    opts: &'a Options,
    next_ino: u32,
    groups_seen: u64,
    groups: HashMap<(u64, u64), Group>,
    /// `-C DIR`, the only way records become members.
    tree: Tree,
    /// List lines with a `+XATTRS` part so far, and the first one's name:
    /// newc cannot carry them ([`Packer::finish`] says so once).
    xattr_files: u64,
    xattr_first: Option<Vec<u8>>,
}

impl<'a, W: Write> Packer<'a, W> {
    /// Opens `-C DIR`: a DIR that is missing or not a directory fails
    /// here, before any input is read.
    pub fn new(out: W, opts: &'a Options) -> Result<Self> {
        let rules = Rules {
            ownership: opts.ownership.clone(),
            keep_mtime: opts.keep_mtime,
            epoch: u64::from(opts.epoch),
            // newc cannot carry xattrs: none are read (see `Packer::warn_xattrs`).
            xattrs: filelist::xattr::Policy::Off,
        };
        let tree = Tree::open(&opts.dir, rules)?;
        Ok(Packer {
            out: Writer::new(out),
            opts,
            next_ino: 1,
            groups_seen: 0,
            groups: HashMap::new(),
            tree,
            xattr_files: 0,
            xattr_first: None,
        })
    }

    /// Adds one stdin record (a plain name or a list line).
    /// Returns the member's mode (type bits included).
    pub fn add_input(&mut self, input: &Input) -> Result<u32> {
        let name = input.name();
        if let Input::Entry(e) = input {
            if e.fields.xattrs.is_some() {
                self.xattr_files += 1;
                self.xattr_first.get_or_insert_with(|| e.name.clone());
            }
        }
        let result = (|| {
            let member = self.tree.resolve_input(input)?;
            if member.whiteout {
                bail!("a whiteout line has no meaning in an initramfs");
            }
            let mut header_name = member.path.clone();
            if header_name.is_empty() {
                header_name.push(b'.');
            }
            let source = Source::Tree(Box::new(member.clone()));
            self.add_member(name, header_name, &member, source)
                .map(|()| member.mode)
        })();
        result.with_context(|| quote(name))
    }

    /// Adds a `--add` host file; symlinks to it are followed.
    pub fn add_host_file(&mut self, add: &Add) -> Result<()> {
        let label = add.host.as_os_str().as_bytes();
        let result = (|| {
            let meta = fs::metadata(&add.host)?;
            let member = self.tree.rules().describe_host(&add.member, &meta)?;
            self.add_member(
                label,
                add.member.clone(),
                &member,
                Source::Host(add.host.clone()),
            )
        })();
        result.with_context(|| {
            format!(
                "--add {}={}",
                quote(&add.member),
                quote(add.host.as_os_str().as_bytes())
            )
        })
    }

    /// Writes the hard-link sets still open and the trailer.
    pub fn finish(mut self) -> Result<W> {
        if let Some(first) = &self.xattr_first {
            // The newc header has no field for them (the kernel's
            // Documentation/driver-api/early-userspace/buffer-format.rst),
            // so the archive is still made, as GNU cpio makes it, but not
            // silently: a program that needs its file capability would
            // fail in the initramfs only.
            filtertool::warn(
                crate::PROGRAM.name,
                format_args!(
                    "{} file{} xattrs, which newc cannot carry (first: {})",
                    self.xattr_files,
                    if self.xattr_files == 1 {
                        " has"
                    } else {
                        "s have"
                    },
                    quote(first)
                ),
            );
        }
        let mut rest: Vec<Group> = self.groups.drain().map(|(_, g)| g).collect();
        rest.sort_by_key(|g| g.first);
        for group in rest {
            let label = group
                .links
                .last()
                .map(|l| l.label.clone())
                .unwrap_or_default();
            self.write_group(group).with_context(|| quote(&label))?;
        }
        self.out.finish().context("writing the archive")
    }

    fn alloc_ino(&mut self) -> Result<u32> {
        let ino = self.next_ino;
        self.next_ino = ino
            .checked_add(1)
            .ok_or_else(|| anyhow!("more than 2^32 members: newc inode numbers are 32-bit"))?;
        Ok(ino)
    }

    fn add_member(
        &mut self,
        label: &[u8],
        name: Vec<u8>,
        m: &Member,
        source: Source,
    ) -> Result<()> {
        let mtime = if self.opts.keep_mtime {
            u32::try_from(m.mtime).map_err(|_| {
                anyhow!(
                    "mtime {} does not fit newc's unsigned 32-bit field",
                    m.mtime
                )
            })?
        } else {
            self.opts.epoch
        };
        let mut header = Header {
            name,
            ino: 0,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            nlink: 1,
            mtime,
            filesize: 0,
            dev_major: 0,
            dev_minor: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        match m.file_type {
            FileType::Regular => {
                header.filesize = file_size(m.disk.size)?;
                if matches!(source, Source::Tree(_)) && m.disk.nlink > 1 {
                    return self.add_link(header, source, label, m);
                }
                header.ino = self.alloc_ino()?;
                let expects: Vec<(&[u8], [u8; 32])> =
                    m.expect.map(|d| (label, d)).into_iter().collect();
                self.write_file(&header, &source, (m.disk.dev, m.disk.ino), &expects)
            }
            FileType::Symlink => {
                let target = m.target.as_deref().unwrap_or_default();
                if let Some(want) = m.expect {
                    let got: [u8; 32] = Sha256::digest(target).into();
                    check_digest(&want, &got, "link target", None)?;
                }
                header.ino = self.alloc_ino()?;
                header.filesize = file_size(target.len() as u64)?;
                self.out.append(&header, &mut &target[..])?;
                Ok(())
            }
            FileType::Directory => {
                header.ino = self.alloc_ino()?;
                header.nlink = 2;
                self.out.append(&header, &mut io::empty())?;
                Ok(())
            }
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
                header.ino = self.alloc_ino()?;
                (header.rdev_major, header.rdev_minor) = m.rdev;
                self.out.append(&header, &mut io::empty())?;
                Ok(())
            }
        }
    }

    /// Holds back one link of a multiply-linked file; writes the set once
    /// its last link has been seen.
    fn add_link(
        &mut self,
        mut header: Header,
        source: Source,
        label: &[u8],
        m: &Member,
    ) -> Result<()> {
        let key = (m.disk.dev, m.disk.ino);
        if !self.groups.contains_key(&key) {
            let ino = self.alloc_ino()?;
            let first = self.groups_seen;
            self.groups_seen += 1;
            self.groups.insert(
                key,
                Group {
                    ino,
                    nlink: m.disk.nlink,
                    first,
                    dev: key.0,
                    disk_ino: key.1,
                    links: Vec::new(),
                },
            );
        }
        let Some(group) = self.groups.get_mut(&key) else {
            bail!("internal error: hard-link set vanished");
        };
        header.ino = group.ino;
        group.links.push(Link {
            header,
            source,
            label: label.to_vec(),
            expect: m.expect,
        });
        if group.links.len() as u64 >= group.nlink {
            if let Some(group) = self.groups.remove(&key) {
                self.write_group(group)?;
            }
        }
        Ok(())
    }

    /// Writes a hard-link set: every link but the last with no data, the
    /// last with the data, all with `nlink` = the number of links written.
    fn write_group(&mut self, group: Group) -> Result<()> {
        let count = u32::try_from(group.links.len())
            .map_err(|_| anyhow!("more than 2^32 links to one file"))?;
        let Some((last, rest)) = group.links.split_last() else {
            return Ok(());
        };
        for link in rest {
            let mut h = link.header.clone();
            h.nlink = count;
            h.filesize = 0;
            self.out
                .append(&h, &mut io::empty())
                .with_context(|| quote(&link.label))?;
        }
        let mut h = last.header.clone();
        h.nlink = count;
        let expects: Vec<(&[u8], [u8; 32])> = group
            .links
            .iter()
            .filter_map(|l| l.expect.map(|d| (&l.label[..], d)))
            .collect();
        self.write_file(&h, &last.source, (group.dev, group.disk_ino), &expects)
    }

    /// Streams a regular file's data into the archive, checking it is
    /// still the inode that was examined, and its SHA-256 against every
    /// digest in `expects`.
    fn write_file(
        &mut self,
        header: &Header,
        source: &Source,
        (dev, ino): (u64, u64),
        expects: &[(&[u8], [u8; 32])],
    ) -> Result<()> {
        let file = match source {
            // The resolver opens it beneath DIR through no symlink and
            // checks it is the inode that was examined.
            Source::Tree(member) => self.tree.open_content(member)?.0,
            Source::Host(path) => {
                // A `--add` host file, named by the user: symlinks to it
                // are followed. O_NONBLOCK: if the name was swapped for a
                // FIFO since stat, open must not hang (no effect on
                // regular files).
                let file = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(path)?;
                let now = file.metadata()?;
                if (now.dev(), now.ino()) != (dev, ino) || !now.is_file() {
                    bail!("was replaced by another file while being archived");
                }
                file
            }
        };
        let mut reader = HashReader {
            inner: file,
            hasher: (!expects.is_empty()).then(Sha256::new),
        };
        self.out.append(header, &mut reader)?;
        if let Some(hasher) = reader.hasher {
            let got: [u8; 32] = hasher.finalize().into();
            for (label, want) in expects {
                let link = (expects.len() > 1).then_some(*label);
                check_digest(want, &got, "content", link)?;
            }
        }
        Ok(())
    }
}

/// A reader that hashes what passes through it, so a file is read once.
struct HashReader<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let (Some(h), Some(data)) = (self.hasher.as_mut(), buf.get(..n)) {
            h.update(data);
        }
        Ok(n)
    }
}

/// `link` names the hard link whose list line disagrees, when the data
/// was checked against the lines of several links.
fn check_digest(want: &[u8; 32], got: &[u8; 32], what: &str, link: Option<&[u8]>) -> Result<()> {
    if want != got {
        let whose = link
            .map(|l| format!(" for {}", quote(l)))
            .unwrap_or_default();
        bail!(
            "{what} changed since it was listed (SHA-256 {}{whose} in the list, {} now)",
            filelist::hex::encode(want),
            filelist::hex::encode(got)
        );
    }
    Ok(())
}

fn file_size(size: u64) -> Result<u32> {
    u32::try_from(size).map_err(|_| {
        anyhow!("{size} bytes is too large for newc, which holds files up to 4 GiB - 1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use filelist::entry::Fields;
    use std::path::Path;

    #[test]
    fn add_syntax() {
        let a = Add::parse(b"./init=/tmp/x=y").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.member, b"init");
        assert_eq!(a.host, PathBuf::from("/tmp/x=y"));
        for bad in [&b"init"[..], b"init=", b"=x", b".=x", b"/init=x", b"../a=x"] {
            assert!(Add::parse(bad).is_err(), "{}", quote(bad));
        }
    }

    #[test]
    fn sizes_over_4_gib_are_refused() {
        assert!(file_size(MAX_FILE_SIZE).is_ok());
        let e = file_size(MAX_FILE_SIZE + 1).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("4 GiB")));
    }

    fn archive(entries: &[(&[u8], Option<Fields>)], dir: &Path) -> Result<Vec<u8>> {
        let opts = Options {
            dir: dir.to_path_buf(),
            ..Options::default()
        };
        let mut p = Packer::new(Vec::new(), &opts)?;
        for (name, fields) in entries {
            let input = match fields {
                None => Input::Name(name.to_vec()),
                Some(f) => Input::Entry(filelist::entry::Entry {
                    name: name.to_vec(),
                    fields: *f,
                }),
            };
            p.add_input(&input)?;
        }
        p.finish()
    }

    /// The (name, ino, nlink, filesize) of every member, trailer excluded.
    fn members(mut data: &[u8]) -> Vec<(Vec<u8>, u32, u32, u32)> {
        let field = |h: &[u8], i: usize| {
            let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap_or("");
            u32::from_str_radix(s, 16).unwrap_or(u32::MAX)
        };
        let mut out = Vec::new();
        let mut at = 0usize;
        loop {
            let h = &data[..110];
            let namesize = field(h, 11) as usize;
            let name = data[110..110 + namesize - 1].to_vec();
            if name == b"TRAILER!!!" {
                return out;
            }
            let size = field(h, 6);
            out.push((name, field(h, 0), field(h, 4), size));
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let next = (data_at + size as usize).div_ceil(4) * 4;
            data = &data[next..];
            at += next;
            assert!(at < 1 << 30);
        }
    }

    #[test]
    fn hard_links_carry_data_on_the_last_link() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = t.path();
        fs::write(d.join("a"), b"data").unwrap_or_else(|e| panic!("{e}"));
        fs::hard_link(d.join("a"), d.join("b")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(d.join("c"), b"x").unwrap_or_else(|e| panic!("{e}"));
        let out = archive(
            &[(b".", None), (b"./a", None), (b"./b", None), (b"./c", None)],
            d,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let m = members(&out);
        let names: Vec<&[u8]> = m.iter().map(|x| &x.0[..]).collect();
        assert_eq!(names, vec![&b"."[..], b"a", b"b", b"c"]);
        assert_eq!((m[1].1, m[1].2, m[1].3), (2, 2, 0));
        assert_eq!((m[2].1, m[2].2, m[2].3), (2, 2, 4));
        assert_eq!((m[3].1, m[3].3), (3, 1));

        // Only one link listed: the set is written at the end, nlink 1.
        let out = archive(&[(b"./a", None), (b"./c", None)], d).unwrap_or_else(|e| panic!("{e:#}"));
        let m = members(&out);
        assert_eq!(m[0].0, b"c");
        assert_eq!(
            (m[1].0.clone(), m[1].1, m[1].2, m[1].3),
            (b"a".to_vec(), 1, 1, 4)
        );
    }

    #[test]
    fn list_type_must_match_the_disk() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        fs::write(t.path().join("f"), b"x").unwrap_or_else(|e| panic!("{e}"));
        let dir = filelist::entry::parse_fields(b"0040755-0-0-0").unwrap_or_else(|e| panic!("{e}"));
        let e = archive(&[(b"./f", Some(dir))], t.path()).err();
        assert!(e.is_some_and(|e| format!("{e:#}")
            .contains("the list says a directory, but it is a regular file on disk")));
    }
}
