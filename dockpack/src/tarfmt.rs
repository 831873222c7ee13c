//! The tar format, written and read by hand.
//!
//! Writing: every header is built here, byte by byte, so that the output
//! is a pure function of the entry (checked with `tar` 0.4: the crate's
//! `append_path`/`append_file` follow symlinks and order by `read_dir`, its
//! long names become GNU `@LongLink` records, and `HeaderMode::Deterministic`
//! rewrites modes). Headers are POSIX ustar (pax, IEEE 1003.1-2017
//! "pax Interchange Format"): a name or link target longer than 100 bytes
//! or not plain ASCII, and a number that does not fit its octal field,
//! goes into a pax extended header (`x`) written just before the entry.
//! No `hdrcharset` record is written: Go's `archive/tar` (Docker,
//! containerd, Podman, skopeo) takes `path` as raw bytes either way.
//! No user or group names, no atime/ctime.
//!
//! Reading: [`walk`] goes through an archive header by header, checking
//! each checksum and following pax/GNU long-name records, so that
//! `dockpack image` can refuse a layer that is not a tar or is cut short
//! before a single byte of the image is written. Every size is checked
//! before it is used: a member must end before 2^63 bytes (an `off_t`, as
//! GNU tar's "value out of range" and Go's `archive/tar` require), so a
//! pax `size=18446744073709551615` is refused instead of wrapping the
//! offset. Member names that are absolute or hold a `..` component, and
//! hard links to such names, are refused as containerd refuses them when
//! it unpacks a layer (`archive/tar.go`, "breakout" checks) and GNU tar
//! strips or skips them: an engine would not unpack them as we describe.

use std::io::{self, Read, Write};

use filelist::xattr::XattrSet;

/// The tar block size.
pub const BLOCK: usize = 512;

/// Largest value of an 8-byte octal field (7 digits).
const MAX_OCTAL7: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (11 digits): 8 GiB - 1 for sizes.
const MAX_OCTAL11: u64 = 0o77777777777;

/// The type of an archive member (the ustar `typeflag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl Kind {
    fn typeflag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Directory => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One member's header fields.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// The full member name (directories end in `/`).
    pub name: &'a [u8],
    pub kind: Kind,
    /// Permission bits (`07777`); the type lives in `kind`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of data that follow (regular files only).
    pub size: u64,
    pub mtime: u64,
    /// Symlink target or hard link's first name.
    pub link: &'a [u8],
    /// Device numbers (character and block devices).
    pub major: u32,
    pub minor: u32,
}

/// Writes `value` as zero-padded octal filling `field` but its last byte,
/// which stays NUL. The caller has checked that it fits.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let mut v = value;
    for i in (0..digits).rev() {
        field[i] = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

/// Appends one pax record, `LEN key=value\n`, where LEN counts the whole
/// record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    pax_record_bytes(out, &[key.as_bytes()], value)
}

/// [`pax_record`] with a key made of `parts` (a `SCHILY.xattr.` prefix and
/// an attribute name that may not be UTF-8).
fn pax_record_bytes(out: &mut Vec<u8>, parts: &[&[u8]], value: &[u8]) {
    let key_len: usize = parts.iter().map(|p| p.len()).sum();
    let base = key_len + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() + base != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    for p in parts {
        out.extend_from_slice(p);
    }
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn needs_pax_name(name: &[u8], limit: usize) -> bool {
    name.len() > limit || !name.is_ascii()
}

/// The 512-byte ustar header block for `m`, with `size` as given.
fn ustar_block(name: &[u8], typeflag: u8, m: &Member<'_>, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    put_octal(&mut h[100..108], u64::from(m.mode & 0o7777));
    put_octal(&mut h[108..116], u64::from(m.uid).min(MAX_OCTAL7));
    put_octal(&mut h[116..124], u64::from(m.gid).min(MAX_OCTAL7));
    put_octal(&mut h[124..136], if size > MAX_OCTAL11 { 0 } else { size });
    put_octal(&mut h[136..148], m.mtime.min(MAX_OCTAL11));
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put_octal(&mut h[329..337], u64::from(m.major).min(MAX_OCTAL7));
    put_octal(&mut h[337..345], u64::from(m.minor).min(MAX_OCTAL7));
    // The checksum is computed with its own field as eight spaces, and
    // written as six octal digits, NUL, space (what GNU tar and Go write).
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put_octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

/// Zero bytes that pad `size` bytes of data to a whole block.
pub fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// Writes the header of `m` (a pax header first where needed). The caller
/// then writes exactly `m.size` bytes of data and [`padding`].
pub fn write_header<W: Write + ?Sized>(out: &mut W, m: &Member<'_>) -> io::Result<()> {
    write_header_xattrs(out, m, &XattrSet::default())
}

/// [`write_header`] with the member's extended attributes as pax
/// `SCHILY.xattr.NAME=VALUE` records, the form GNU tar, star, Go's
/// `archive/tar` (`PAXRecords`), containerd, podman and umoci read and
/// apply with `lsetxattr`. A record is length-prefixed, so a binary value
/// (a `security.capability` is a `vfs_cap_data` struct) needs no escaping;
/// the name cannot hold `=`, which ends a pax keyword (POSIX pax
/// "keyword=value"), nor NUL, which no xattr name holds. Records come in
/// the set's order (sorted by name), so the bytes are the same every time.
pub fn write_header_xattrs<W: Write + ?Sized>(
    out: &mut W,
    m: &Member<'_>,
    xattrs: &XattrSet,
) -> io::Result<()> {
    if m.major > MAX_OCTAL7 as u32 || m.minor > MAX_OCTAL7 as u32 {
        // Linux device numbers are at most 12 and 20 bits, so this cannot
        // happen for a real device; refuse rather than write a wrong one.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "device number does not fit a tar header",
        ));
    }
    let mut pax = Vec::new();
    if needs_pax_name(m.name, 100) {
        pax_record(&mut pax, "path", m.name);
    }
    if needs_pax_name(m.link, 100) {
        pax_record(&mut pax, "linkpath", m.link);
    }
    if m.size > MAX_OCTAL11 {
        pax_record(&mut pax, "size", m.size.to_string().as_bytes());
    }
    if u64::from(m.uid) > MAX_OCTAL7 {
        pax_record(&mut pax, "uid", m.uid.to_string().as_bytes());
    }
    if u64::from(m.gid) > MAX_OCTAL7 {
        pax_record(&mut pax, "gid", m.gid.to_string().as_bytes());
    }
    if m.mtime > MAX_OCTAL11 {
        pax_record(&mut pax, "mtime", m.mtime.to_string().as_bytes());
    }
    for (name, value) in xattrs.iter() {
        if name.contains(&b'=') || name.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "xattr name {} holds '=', which a pax record cannot carry",
                    filtertool::quote::quote(name)
                ),
            ));
        }
        pax_record_bytes(&mut pax, &[b"SCHILY.xattr.", name], value);
    }
    if !pax.is_empty() {
        // The pax header's own name is ignored by readers; a fixed one
        // keeps the bytes independent of the host (GNU tar puts its pid
        // here by default).
        let ext = Member {
            name: b"././@PaxHeader",
            kind: Kind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: pax.len() as u64,
            mtime: m.mtime.min(MAX_OCTAL11),
            link: b"",
            major: 0,
            minor: 0,
        };
        out.write_all(&ustar_block(ext.name, b'x', &ext, ext.size, b""))?;
        out.write_all(&pax)?;
        out.write_all(&[0u8; BLOCK][..padding(ext.size)])?;
    }
    let size = if m.kind == Kind::Regular { m.size } else { 0 };
    out.write_all(&ustar_block(m.name, m.kind.typeflag(), m, size, m.link))
}

/// The end of an archive: two zero blocks.
pub fn write_end<W: Write + ?Sized>(out: &mut W) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK])
}

/// A block that no tar reader accepts (its checksum is wrong), written
/// after a partial archive when an error stops the writer: Go's
/// `archive/tar` takes a clean end of input at a header boundary as the
/// end of the archive even without the two zero blocks, so merely
/// stopping could leave something that loads as a short layer.
pub fn poison_block() -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let msg = b"dockpack: this archive is incomplete: an error stopped it\n";
    b[..msg.len()].copy_from_slice(msg);
    b[148..156].copy_from_slice(b"bad\0sum\0");
    b
}

/// What [`walk`] reports for each member.
#[derive(Debug, Clone)]
pub struct Header {
    /// The name, with pax `path` or GNU long name applied.
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub link: Vec<u8>,
    pub size: u64,
    /// Where the member's data starts in the archive.
    pub data_offset: u64,
}

/// Why a member name cannot be unpacked inside the root, if it cannot:
/// absolute, empty, or with a `..` component.
pub fn unsafe_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.first() == Some(&b'/') {
        Some("is absolute")
    } else if name.split(|&b| b == b'/').any(|c| c == b"..") {
        Some("has a \"..\" component")
    } else {
        None
    }
}

/// The largest end offset of a member: what fits an `off_t`.
const MAX_END: u64 = i64::MAX as u64;

/// Why an archive does not read as a tar.
#[derive(Debug)]
pub enum WalkError {
    Io(io::Error),
    Format { offset: u64, what: String },
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Io(e) => write!(f, "{e}"),
            WalkError::Format { offset, what } => {
                write!(f, "not a valid tar at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for WalkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalkError::Io(e) => Some(e),
            WalkError::Format { .. } => None,
        }
    }
}

/// Parses a numeric header field: octal (space/NUL padded) or the GNU
/// base-256 form (high bit of the first byte set) that Go and GNU tar
/// write for large values.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            if first & 0x40 != 0 {
                return None; // negative
            }
            let mut v: u64 = u64::from(first & 0x3f);
            for &b in &field[1..] {
                v = v.checked_mul(256)?.checked_add(u64::from(b))?;
            }
            return Some(v);
        }
    }
    // No allocation: this runs for several fields of every header.
    let text = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ');
    let mut v: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// Parses pax records, returning (key, value) pairs.
fn parse_pax(data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return None;
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=')?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Some(out)
}

/// The limit on pax and GNU long-name data we read into memory.
const MAX_META: u64 = 1 << 20;

/// Reads an archive from `r` to its end-of-archive marker, calling
/// `visit` with each member's header and a reader over its data (which
/// it may read part of). `skip(r, n)` discards `n` bytes: a seek for a
/// file, a read-through where every byte must pass a hasher. Input that
/// ends before the end-of-archive blocks is an error, so is a bad
/// checksum. Returns the offset just after the end marker's first block.
pub fn walk<R: Read>(
    r: &mut R,
    mut skip: impl FnMut(&mut R, u64) -> io::Result<()>,
    mut visit: impl FnMut(&Header, &mut dyn Read) -> io::Result<bool>,
) -> Result<u64, WalkError> {
    let mut offset: u64 = 0;
    let mut block = [0u8; BLOCK];
    let mut pax_path: Option<Vec<u8>> = None;
    let mut pax_link: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    let fmt_err = |offset: u64, what: &str| WalkError::Format {
        offset,
        what: what.to_string(),
    };
    loop {
        match read_full(r, &mut block) {
            Ok(BLOCK) => {}
            Ok(0) => {
                return Err(fmt_err(
                    offset,
                    "archive ends without its end-of-archive blocks (truncated?)",
                ))
            }
            Ok(_) => {
                return Err(fmt_err(
                    offset,
                    "archive ends in the middle of a header (truncated?)",
                ))
            }
            Err(e) => return Err(WalkError::Io(e)),
        }
        if block.iter().all(|&b| b == 0) {
            return Ok(offset + BLOCK as u64);
        }
        let stored = parse_numeric(&block[148..156])
            .ok_or_else(|| fmt_err(offset, "header checksum is not a number"))?;
        // 512 bytes of at most 255 each: no overflow. The checksum field
        // itself counts as eight spaces.
        let unsigned: u64 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u64::from(b))
            .sum::<u64>()
            + 8 * 32;
        // Some old writers summed signed chars; accept both sums (the
        // signed one is computed only when the usual one does not match).
        let signed = || -> i64 {
            block[..148]
                .iter()
                .chain(&block[156..])
                .map(|&b| i64::from(b as i8))
                .sum::<i64>()
                + 8 * 32
        };
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed()) {
            return Err(fmt_err(offset, "header checksum does not match"));
        }
        let typeflag = block[156];
        let mut size = parse_numeric(&block[124..136])
            .ok_or_else(|| fmt_err(offset, "size field is not a number"))?;
        let header_at = offset;
        offset += BLOCK as u64;
        match typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                if size > MAX_META {
                    return Err(fmt_err(offset, "extended header larger than 1 MiB"));
                }
                // size <= 1 MiB and offset < MAX_END (checked for every
                // member before), so these sums cannot overflow.
                let mut data = vec![0u8; size as usize];
                match read_full(r, &mut data) {
                    Ok(n) if n == data.len() => {}
                    Ok(_) => {
                        return Err(fmt_err(
                            offset,
                            "archive ends inside an extended header (truncated?)",
                        ))
                    }
                    Err(e) => return Err(WalkError::Io(e)),
                }
                let pad = padding(size) as u64;
                skip(r, pad).map_err(WalkError::Io)?;
                offset += size + pad;
                match typeflag {
                    b'x' => {
                        let recs = parse_pax(&data)
                            .ok_or_else(|| fmt_err(offset, "malformed pax extended header"))?;
                        for (k, v) in recs {
                            match &k[..] {
                                b"path" => pax_path = Some(v),
                                b"linkpath" => pax_link = Some(v),
                                b"size" => {
                                    pax_size = Some(
                                        std::str::from_utf8(&v)
                                            .ok()
                                            .and_then(|s| s.parse().ok())
                                            .ok_or_else(|| fmt_err(offset, "bad pax size"))?,
                                    )
                                }
                                _ => {}
                            }
                        }
                    }
                    b'L' => pax_path = Some(cstr(&data).to_vec()),
                    b'K' => pax_link = Some(cstr(&data).to_vec()),
                    _ => {} // global pax headers carry nothing we use
                }
                continue;
            }
            _ => {}
        }
        if let Some(s) = pax_size.take() {
            size = s;
        }
        // Only these types carry data (POSIX: hard links, symlinks,
        // devices, directories and FIFOs have none whatever size says,
        // but GNU tar and Go both honour the size field; do the same).
        let name = match pax_path.take() {
            Some(p) => p,
            None => {
                let mut n = Vec::new();
                let prefix = cstr(&block[345..500]);
                if &block[257..262] == b"ustar" && !prefix.is_empty() {
                    n.extend_from_slice(prefix);
                    n.push(b'/');
                }
                n.extend_from_slice(cstr(&block[..100]));
                n
            }
        };
        let link = pax_link
            .take()
            .unwrap_or_else(|| cstr(&block[157..257]).to_vec());
        // Checked before anything is skipped: the member's end must fit
        // an off_t (see the module doc), which also bounds `rest + pad`.
        let pad = padding(size) as u64;
        let end = offset
            .checked_add(size)
            .and_then(|e| e.checked_add(pad))
            .filter(|&e| e <= MAX_END)
            .ok_or_else(|| {
                fmt_err(
                    header_at,
                    &format!(
                        "member {}: size {size} is out of range",
                        filtertool::quote::quote(&name)
                    ),
                )
            })?;
        if let Some(why) = unsafe_name(&name) {
            return Err(fmt_err(
                header_at,
                &format!(
                    "member name {} {why}: it would unpack outside the root",
                    filtertool::quote::quote(&name)
                ),
            ));
        }
        if typeflag == b'1' {
            if let Some(why) = unsafe_name(&link) {
                return Err(fmt_err(
                    header_at,
                    &format!(
                        "hard link {} to {}: the target {why}",
                        filtertool::quote::quote(&name),
                        filtertool::quote::quote(&link)
                    ),
                ));
            }
        }
        let hdr = Header {
            name,
            typeflag,
            link,
            size,
            data_offset: offset,
        };
        let mut data = Read::by_ref(r).take(size);
        let more = visit(&hdr, &mut data).map_err(WalkError::Io)?;
        let rest = data.limit();
        skip(r, rest + pad).map_err(WalkError::Io)?;
        offset = end;
        if !more {
            return Ok(offset);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member<'a>(name: &'a [u8], size: u64) -> Member<'a> {
        Member {
            name,
            kind: Kind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            link: b"",
            major: 0,
            minor: 0,
        }
    }

    #[test]
    fn pax_record_lengths() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", b"abc");
        assert_eq!(v, b"12 path=abc\n");
        // A record whose length crosses a digit boundary: 96+3 = 99 bytes
        // of payload plus "100" (3 digits) gives 102.
        let mut v = Vec::new();
        let value = vec![b'a'; 91];
        pax_record(&mut v, "path", &value);
        let len: usize = std::str::from_utf8(&v[..v.iter().position(|&b| b == b' ').unwrap()])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, v.len());
    }

    fn walk_names(archive: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, WalkError> {
        let mut names = Vec::new();
        let mut r = archive;
        walk(
            &mut r,
            |r, n| io::copy(&mut Read::by_ref(r).take(n), &mut io::sink()).map(|_| ()),
            |h, _| {
                names.push((h.name.clone(), h.size));
                Ok(true)
            },
        )?;
        Ok(names)
    }

    #[test]
    fn long_and_binary_names_round_trip() {
        let long = vec![b'x'; 150];
        let bin = b"a/\xff\xfe".to_vec();
        let mut out = Vec::new();
        for name in [&long, &bin] {
            write_header(&mut out, &member(name, 3)).unwrap();
            out.extend_from_slice(b"abc");
            out.extend_from_slice(&[0u8; BLOCK][..padding(3)]);
        }
        write_end(&mut out).unwrap();
        assert_eq!(out.len() % BLOCK, 0);
        let names = walk_names(&out).unwrap();
        assert_eq!(names, vec![(long, 3), (bin, 3)]);
    }

    #[test]
    fn huge_sizes_go_to_pax() {
        let mut out = Vec::new();
        let m = member(b"big", 9 << 30);
        write_header(&mut out, &m).unwrap();
        // Only the header: check the pax record is there.
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("size=9663676416\n"), "{text}");
    }

    #[test]
    fn truncated_and_corrupt_archives_are_refused() {
        let mut out = Vec::new();
        write_header(&mut out, &member(b"f", 600)).unwrap();
        out.extend_from_slice(&[7u8; 600]);
        out.extend_from_slice(&[0u8; BLOCK][..padding(600)]);
        let whole_member = out.len();
        write_end(&mut out).unwrap();
        assert!(walk_names(&out).is_ok());
        // Cut at a member boundary: no end marker.
        assert!(walk_names(&out[..whole_member]).is_err());
        // Cut inside data.
        assert!(walk_names(&out[..700]).is_err());
        // A flipped byte in the header.
        let mut bad = out.clone();
        bad[3] ^= 1;
        assert!(walk_names(&bad).is_err());
        // Not a tar at all.
        assert!(walk_names(&[b'x'; 4096]).is_err());
        // The poison block is refused.
        let mut poisoned = out[..whole_member].to_vec();
        poisoned.extend_from_slice(&poison_block());
        assert!(walk_names(&poisoned).is_err());
    }

    #[test]
    fn checksum_matches_gnu_layout() {
        let h = ustar_block(b"a", b'0', &member(b"a", 0), 0, b"");
        assert_eq!(&h[155..156], b" ");
        assert_eq!(h[154], 0);
        assert_eq!(&h[257..265], b"ustar\x0000");
    }
}
