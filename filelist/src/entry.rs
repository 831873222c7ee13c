//! One list record: parsing, validation and formatting.
//!
//! Parsing is strict because lists are compared as bytes (`comm`,
//! `layerdiff`, the SHA-256 of a list as a layer id): a line that would
//! format differently from how it was read, such as `100644` for `0100644`
//! or an uppercase digest, is refused rather than silently normalised.

use std::fmt;
use std::io::{self, Write};

use bstr::ByteSlice;

use crate::hex;
use crate::records::Terminator;

/// `S_IFMT` and the file type values of `inode(7)`.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// The mode of a whiteout line (docs/DESIGN.md, "The list format": a
/// regular file with no permission bits, owned by 0:0).
pub const WHITEOUT_MODE: u32 = S_IFREG;

/// The type part of a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The type in words, with its article, for messages: "a directory".
    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "a regular file",
            FileType::Directory => "a directory",
            FileType::Symlink => "a symlink",
            FileType::CharDevice => "a character device",
            FileType::BlockDevice => "a block device",
            FileType::Fifo => "a FIFO",
            FileType::Socket => "a socket",
        }
    }

    /// Whether a file that a list or a fakeroot state calls `self` may be
    /// `on_disk` in the tree: the same type, or a regular file standing
    /// for a device, FIFO or socket, which is what libfakeroot's `mknod`
    /// wrapper creates (an empty file) while its state records the node.
    /// Every other difference is a list or state that does not describe
    /// the tree, which the tools refuse.
    pub fn fits_on_disk(self, on_disk: Option<FileType>) -> bool {
        on_disk == Some(self)
            || (on_disk == Some(FileType::Regular)
                && matches!(
                    self,
                    FileType::CharDevice
                        | FileType::BlockDevice
                        | FileType::Fifo
                        | FileType::Socket
                ))
    }

    /// The type encoded in `mode`'s `S_IFMT` bits, if it is one of the
    /// seven that `inode(7)` defines.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            S_IFCHR => FileType::CharDevice,
            S_IFBLK => FileType::BlockDevice,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
}

/// The last field of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Digest {
    /// SHA-256 of a regular file's content or of a symlink's target bytes.
    Sha256([u8; 32]),
    /// A character or block device.
    Device { major: u32, minor: u32 },
    /// Directories, FIFOs and sockets: printed as `0`.
    Zero,
    /// A whiteout made by `layerdiff --whiteouts`.
    Whiteout,
}

/// Everything after the name: `MODE-UID-GID-DIGEST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fields {
    /// `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub digest: Digest,
    /// SHA-256 of the file's canonical xattr set
    /// ([`crate::xattr::XattrSet::digest`]), `None` for a file without
    /// any: printed as `+HEX` after the digest.
    pub xattrs: Option<[u8; 32]>,
}

impl Fields {
    /// The file type; always `Some` for fields that came from [`parse_fields`].
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    pub fn is_whiteout(&self) -> bool {
        self.digest == Digest::Whiteout
    }

    /// The whiteout fields (docs/DESIGN.md, "The list format"):
    /// `0100000-0-0-whiteout`.
    pub fn whiteout() -> Fields {
        Fields {
            mode: WHITEOUT_MODE,
            uid: 0,
            gid: 0,
            digest: Digest::Whiteout,
            xattrs: None,
        }
    }
}

/// A whole record with an owned name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub name: Vec<u8>,
    pub fields: Fields,
}

impl Entry {
    /// Parses one record without its terminator.
    pub fn parse(line: &[u8]) -> Result<Entry, ParseError> {
        let (name, fields) = split_line(line)?;
        Ok(Entry {
            name: name.to_vec(),
            fields,
        })
    }

    /// Writes the record followed by `term`.
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W, term: Terminator) -> io::Result<()> {
        write_line(out, &self.name, &self.fields, term)
    }
}

/// A record on the stdin of a packer: either a plain name, as `find .`
/// prints it, or a list line whose fields are then authoritative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Name(Vec<u8>),
    Entry(Entry),
}

impl Input {
    /// A record is a list line when the text after its last space parses
    /// as fields; anything else is taken as a plain name (names may
    /// contain spaces).
    pub fn parse(record: &[u8]) -> Input {
        match split_line(record) {
            Ok((name, fields)) => Input::Entry(Entry {
                name: name.to_vec(),
                fields,
            }),
            Err(_) => Input::Name(record.to_vec()),
        }
    }

    pub fn name(&self) -> &[u8] {
        match self {
            Input::Name(n) => n,
            Input::Entry(e) => &e.name,
        }
    }
}

/// What is wrong with a record. Callers add the file and line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    text: Vec<u8>,
}

impl ParseError {
    fn new(what: &'static str, text: &[u8]) -> ParseError {
        // Keep messages one short line even for hostile input.
        let text = text.iter().copied().take(80).collect();
        ParseError { what, text }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.what)?;
        write_quoted(f, &self.text)
    }
}

impl std::error::Error for ParseError {}

// The quoting rule lives once, in filtertool; re-exported here because
// the list format's errors were its first user.
pub use filtertool::quote::{quote, write_quoted};

/// Splits a record at its last space into the name and the parsed fields.
pub fn split_line(line: &[u8]) -> Result<(&[u8], Fields), ParseError> {
    let space = line
        .rfind_byte(b' ')
        .ok_or_else(|| ParseError::new("no space before the fields in", line))?;
    let name = &line[..space];
    if name.is_empty() {
        return Err(ParseError::new("empty name in", line));
    }
    let fields = parse_fields(&line[space + 1..])?;
    Ok((name, fields))
}

/// Parses `MODE-UID-GID-DIGEST` and checks that the digest fits the type.
pub fn parse_fields(text: &[u8]) -> Result<Fields, ParseError> {
    // MODE is exactly 7 digits; UID and GID end at the next hyphens; the
    // digest has none.
    let malformed = || ParseError::new("fields are not MODE-UID-GID-DIGEST:", text);
    // Plain loops: the fields are a few bytes long, too short for memchr's
    // set-up to pay off.
    let hyphen = |t: &[u8]| t.iter().position(|&b| b == b'-');
    let mode_end = hyphen(text).ok_or_else(malformed)?;
    let mode = &text[..mode_end];
    let rest = &text[mode_end + 1..];
    let uid_end = hyphen(rest).ok_or_else(malformed)?;
    let uid = &rest[..uid_end];
    let rest = &rest[uid_end + 1..];
    let gid_end = hyphen(rest).ok_or_else(malformed)?;
    let gid = &rest[..gid_end];
    let digest = &rest[gid_end + 1..];
    // `BASE+XATTRS`: no base digest holds a `+`, so the first one splits.
    let (digest, xattrs) = match digest.iter().position(|&b| b == b'+') {
        None => (digest, None),
        Some(plus) => {
            let x = &digest[plus + 1..];
            let x = hex::decode32(x).ok_or_else(|| {
                ParseError::new("xattr digest is not 64 lowercase hex digits:", x)
            })?;
            (&digest[..plus], Some(x))
        }
    };
    if mode.len() != 7 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(ParseError::new("mode is not 7 octal digits:", mode));
    }
    let mode = mode
        .iter()
        .fold(0u32, |acc, &b| acc << 3 | u32::from(b - b'0'));
    let uid = parse_decimal(uid).ok_or_else(|| ParseError::new("bad uid", uid))?;
    let gid = parse_decimal(gid).ok_or_else(|| ParseError::new("bad gid", gid))?;
    let kind = FileType::from_mode(mode)
        .ok_or_else(|| ParseError::new("unknown file type in mode", text))?;
    let parsed = match kind {
        FileType::Regular if digest == b"whiteout" => {
            if mode != WHITEOUT_MODE || uid != 0 || gid != 0 || xattrs.is_some() {
                return Err(ParseError::new(
                    "a whiteout must be 0100000-0-0-whiteout:",
                    text,
                ));
            }
            Digest::Whiteout
        }
        FileType::Regular | FileType::Symlink => Digest::Sha256(
            hex::decode32(digest)
                .ok_or_else(|| ParseError::new("digest is not 64 lowercase hex digits:", digest))?,
        ),
        FileType::CharDevice | FileType::BlockDevice => {
            let bad = || ParseError::new("device digest is not MAJOR:MINOR:", digest);
            let colon = digest.iter().position(|&b| b == b':').ok_or_else(bad)?;
            let major = parse_decimal(&digest[..colon]).ok_or_else(bad)?;
            let minor = parse_decimal(&digest[colon + 1..]).ok_or_else(bad)?;
            Digest::Device { major, minor }
        }
        FileType::Directory | FileType::Fifo | FileType::Socket => {
            if digest != b"0" {
                return Err(ParseError::new(
                    "digest of a directory, FIFO or socket is not 0:",
                    digest,
                ));
            }
            Digest::Zero
        }
    };
    Ok(Fields {
        mode,
        uid,
        gid,
        digest: parsed,
        xattrs,
    })
}

/// Canonical decimal only (no sign, no leading zeros): a number that
/// would print differently is a different line.
fn parse_decimal(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    u32::try_from(v).ok()
}

/// Writes `NAME SP MODE-UID-GID-DIGEST TERM`.
///
/// The caller checks that `name` does not contain the terminator (see
/// [`crate::records::check_name`]).
pub fn write_line<W: Write + ?Sized>(
    out: &mut W,
    name: &[u8],
    fields: &Fields,
    term: Terminator,
) -> io::Result<()> {
    out.write_all(name)?;
    write!(out, " {:07o}-{}-{}-", fields.mode, fields.uid, fields.gid)?;
    match fields.digest {
        Digest::Sha256(d) => out.write_all(&hex::encode32(&d))?,
        Digest::Device { major, minor } => write!(out, "{major}:{minor}")?,
        Digest::Zero => out.write_all(b"0")?,
        Digest::Whiteout => out.write_all(b"whiteout")?,
    }
    if let Some(x) = &fields.xattrs {
        out.write_all(b"+")?;
        out.write_all(&hex::encode32(x))?;
    }
    out.write_all(&[term.byte()])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] =
        b"./bin/hello 0100755-0-0-22e4d2865e654f830f6bfc146e170846dde15185be675db4e9cd987cb02afa78";

    fn round_trip(line: &[u8]) {
        let e = Entry::parse(line).unwrap();
        let mut out = Vec::new();
        e.write_to(&mut out, Terminator::Newline).unwrap();
        assert_eq!(&out[..out.len() - 1], line);
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[test]
    fn what_may_stand_on_disk_for_a_listed_type() {
        use FileType::*;
        for (listed, disk, fits) in [
            (Regular, Some(Regular), true),
            (Directory, Some(Directory), true),
            (Fifo, Some(Fifo), true),
            // libfakeroot's mknod: an empty regular file for the node.
            (CharDevice, Some(Regular), true),
            (BlockDevice, Some(Regular), true),
            (Fifo, Some(Regular), true),
            (Socket, Some(Regular), true),
            (Directory, Some(Regular), false),
            (Symlink, Some(Regular), false),
            (Regular, Some(Directory), false),
            (CharDevice, Some(Directory), false),
            (CharDevice, Some(BlockDevice), false),
            (Regular, Some(CharDevice), false),
            (Regular, None, false),
        ] {
            assert_eq!(listed.fits_on_disk(disk), fits, "{listed:?} on {disk:?}");
        }
    }

    #[test]
    fn parses_the_seed_lines() {
        let e = Entry::parse(HELLO).unwrap();
        assert_eq!(e.name, b"./bin/hello");
        assert_eq!(e.fields.mode, 0o100755);
        assert_eq!(e.fields.file_type(), Some(FileType::Regular));
        round_trip(HELLO);
        round_trip(b". 0040755-0-0-0");
        round_trip(
            b"./init 0120777-0-0-14bdc0fb069623c05620fc62589fe1f52ee6fb67a34deb447bf6f1f7e881f32a",
        );
        round_trip(b"./dev/null 0020666-0-0-1:3");
        round_trip(b"./a/.wh.b 0100000-0-0-whiteout");
        round_trip(b"./with space/and more 0010644-1000-100-0");
    }

    const X: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn xattr_digests_follow_every_kind_but_whiteouts() {
        let h = "22e4d2865e654f830f6bfc146e170846dde15185be675db4e9cd987cb02afa78";
        for base in [
            format!("./bin/ping 0100755-0-0-{h}"),
            "./d 0040755-0-0-0".to_string(),
            format!("./l 0120777-0-0-{h}"),
            "./dev/null 0020666-0-0-1:3".to_string(),
            "./fifo 0010644-0-0-0".to_string(),
        ] {
            let line = format!("{base}+{X}");
            round_trip(line.as_bytes());
            let e = Entry::parse(line.as_bytes()).unwrap();
            assert_eq!(
                e.fields.xattrs.map(|x| hex::encode32(&x).to_vec()),
                Some(X.as_bytes().to_vec())
            );
            let plain = Entry::parse(base.as_bytes()).unwrap();
            assert_eq!(plain.fields.xattrs, None);
            assert_ne!(
                plain.fields, e.fields,
                "a changed xattr set is a changed line"
            );
            // The line without xattrs is a prefix of the one with: `sort`
            // puts it first, and `comm` sees two different lines.
            assert!(line.as_bytes() > base.as_bytes());
        }
        for bad in [
            format!("./a/.wh.b 0100000-0-0-whiteout+{X}"),
            "./x 0040755-0-0-0+".to_string(),
            format!("./x 0040755-0-0-0+{}", &X[1..]),
            format!("./x 0040755-0-0-0+{}", X.to_uppercase()),
            format!("./x 0040755-0-0-0+{X}+{X}"),
            format!("./x 0040755-0-0-+{X}"),
            format!("./x 0040755-0-0-0+{X}-"),
        ] {
            assert!(Entry::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_last_space_separates() {
        let (name, f) = split_line(b"./a b c 0040700-1-2-0").unwrap();
        assert_eq!(name, b"./a b c");
        assert_eq!((f.uid, f.gid), (1, 2));
    }

    #[test]
    fn non_utf8_names_pass() {
        round_trip(b"./\xff\xfe 0040755-0-0-0");
    }

    #[test]
    fn refuses_malformed_lines() {
        for bad in [
            &b"./x"[..],
            b" 0040755-0-0-0",
            b"./x 040755-0-0-0",
            b"./x 0040758-0-0-0",
            b"./x 0040755-0-0",
            b"./x 0040755--0-0",
            b"./x 0040755-01-0-0",
            b"./x 0040755-4294967296-0-0",
            b"./x 0040755-0-0-1",
            b"./x 0100644-0-0-0",
            b"./x 0100644-0-0-22E4D2865E654F830F6BFC146E170846DDE15185BE675DB4E9CD987CB02AFA78",
            b"./x 0020644-0-0-13",
            b"./x 0100644-0-0-whiteout",
            b"./x 0000644-0-0-0",
            b"./x 0040755-0-0-0-",
        ] {
            assert!(Entry::parse(bad).is_err(), "{}", quote(bad));
        }
    }

    #[test]
    fn input_tells_names_from_lines() {
        assert_eq!(Input::parse(b"./a b"), Input::Name(b"./a b".to_vec()));
        assert!(matches!(Input::parse(HELLO), Input::Entry(_)));
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote(b"a\nb\xff\"\\"), r#""a\nb\xff\"\\""#);
    }
}
