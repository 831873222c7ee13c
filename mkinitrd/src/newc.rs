//! A streaming writer and reader for the newc ("070701") cpio format, the
//! one the Linux kernel unpacks as an initramfs. The reader ([`Reader`])
//! is what `kvmrun` measures an initrd with; keeping both here, as tar-rs
//! and `dockpack::tarfmt` keep a format's two halves together, means one
//! definition of the layout.
//!
//! Why our own: the `cpio` crate wants UTF-8 names and does not notice a
//! short write (checked with `cpio` 0.4: a short write gives a corrupt
//! archive and `Ok`), and the format is small. The layout follows
//! the kernel's `Documentation/driver-api/early-userspace/buffer-format.rst`
//! and GNU cpio's output, byte for byte:
//!
//! - a 110-byte header: the magic `070701`, then 13 fields of exactly 8
//!   hex digits (GNU cpio writes upper case; the kernel reads both):
//!   ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
//!   rdevmajor, rdevminor, namesize (counting the NUL), check (0 for newc);
//! - the name and its NUL, padded with NULs so the data starts at a
//!   multiple of 4;
//! - `filesize` bytes of data (a symlink's target), padded to 4;
//! - after the last member, a `TRAILER!!!` member (nlink 1, all else 0),
//!   and NULs up to a multiple of 512 bytes, as GNU cpio pads to its block.
//!
//! Hard links share (devmajor, devminor, ino); the caller decides which link
//! carries the data (GNU cpio puts it on the last one, filesize 0 on the
//! others). The trailer resets the kernel's link table, so archives that are
//! concatenated (kvmrun appends its init) each end with one.
//!
//! Every field is a `u32`, so the 8-digit limit holds by type; what can
//! still be out of range (a name longer than 4 GiB, a name with a NUL or an
//! empty name) is refused with `InvalidInput`. After any error the writer is
//! poisoned: `append` and `finish` refuse, so a failed archive never gets
//! its trailer and never looks complete.

use std::io::{self, BufRead, Read, Write};

/// The magic of the "new ASCII" format without CRC.
pub const MAGIC: &[u8; 6] = b"070701";

/// The size of a header before the name.
pub const HEADER_LEN: usize = 110;

/// The name of the end-of-archive member.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// GNU cpio's output block: the archive is padded to a multiple of this.
pub const BLOCK: u64 = 512;

/// Size of the copy buffer, allocated once per writer.
const COPY_BUF: usize = 128 * 1024;

/// One member's header. Every number is written as 8 hex digits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Member name without the NUL, e.g. `b"init"` or `b"bin/sh"`.
    pub name: Vec<u8>,
    pub ino: u32,
    /// `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// The number of data bytes that follow; 0 for directories, devices,
    /// FIFOs and all but the data-carrying link of a hard-link set.
    pub filesize: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

impl Header {
    /// The 110 header bytes for this member; `InvalidInput` if the name is
    /// empty, holds a NUL, or is too long for the namesize field.
    pub fn encode(&self) -> io::Result<[u8; HEADER_LEN]> {
        if self.name.is_empty() {
            return Err(invalid("empty member name".to_string()));
        }
        if self.name.contains(&0) {
            return Err(invalid(format!(
                "member name {:?} contains a NUL byte",
                String::from_utf8_lossy(&self.name)
            )));
        }
        let namesize = u32::try_from(self.name.len() + 1).map_err(|_| {
            invalid(format!(
                "member name of {} bytes is too long for newc",
                self.name.len()
            ))
        })?;
        let fields = [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            self.dev_major,
            self.dev_minor,
            self.rdev_major,
            self.rdev_minor,
            namesize,
            0, // check: only the "070702" CRC format uses it
        ];
        let mut out = [0u8; HEADER_LEN];
        out[..6].copy_from_slice(MAGIC);
        for (i, value) in fields.iter().enumerate() {
            put_hex8(&mut out[6 + 8 * i..6 + 8 * (i + 1)], *value);
        }
        Ok(out)
    }
}

/// Writes `value` as exactly 8 upper-case hex digits into `out` (8 bytes).
fn put_hex8(out: &mut [u8], value: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (i, byte) in out.iter_mut().enumerate() {
        let shift = 4 * (7 - i);
        *byte = DIGITS[((value >> shift) & 0xf) as usize];
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The number of NULs that bring `len` to a multiple of `align`.
fn pad_len(len: u64, align: u64) -> u64 {
    (align - len % align) % align
}

const ZEROS: [u8; 512] = [0; 512];

/// A newc archive being written to `W`.
pub struct Writer<W: Write> {
    out: W,
    /// Bytes written so far, for the 4-byte alignment and the final block.
    written: u64,
    buf: Vec<u8>,
    poisoned: bool,
}

impl<W: Write> Writer<W> {
    /// Starts an archive on `out`. Nothing is written until the first
    /// member. `out` should be buffered when it is a pipe or file: headers
    /// and padding are written in small pieces.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            buf: Vec::new(),
            poisoned: false,
        }
    }

    /// Bytes written to the output so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    /// Writes header + name + padding, then exactly `h.filesize` bytes
    /// copied from `data` (an error if `data` is shorter or longer), then
    /// padding. Streams through a fixed buffer; never holds a whole file.
    ///
    /// On error the writer is poisoned: later calls and `finish` fail.
    pub fn append(&mut self, h: &Header, data: &mut dyn Read) -> io::Result<()> {
        if self.poisoned {
            return Err(poisoned());
        }
        let result = self.append_inner(h, data);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn append_inner(&mut self, h: &Header, data: &mut dyn Read) -> io::Result<()> {
        let header = h.encode()?;
        self.put(&header)?;
        self.put_name(&h.name)?;
        self.copy_exact(data, u64::from(h.filesize), &h.name)?;
        self.pad(4)
    }

    /// Writes the `TRAILER!!!` record and pads the archive to a multiple of
    /// 512 bytes (as GNU cpio), flushes, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.poisoned {
            return Err(poisoned());
        }
        let trailer = Header {
            name: TRAILER.to_vec(),
            nlink: 1,
            ..Header::default()
        };
        self.put(&trailer.encode()?)?;
        self.put_name(TRAILER)?;
        self.pad(BLOCK)?;
        self.out.flush().map_err(output)?;
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes).map_err(output)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn put_name(&mut self, name: &[u8]) -> io::Result<()> {
        self.put(name)?;
        self.put(&[0])?;
        self.pad(4)
    }

    fn pad(&mut self, align: u64) -> io::Result<()> {
        let n = pad_len(self.written, align) as usize; // < 512
        self.put(&ZEROS[..n])
    }

    /// Copies exactly `size` bytes from `data`, then checks it has no more.
    fn copy_exact(&mut self, data: &mut dyn Read, size: u64, name: &[u8]) -> io::Result<()> {
        if size > 0 && self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: data ended after {} of {} bytes",
                            String::from_utf8_lossy(name),
                            size - left,
                            size
                        ),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(&self.buf[..n]).map_err(output)?;
            self.written += n as u64;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        loop {
            match data.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: data is longer than the {} bytes declared",
                            String::from_utf8_lossy(name),
                            size
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A failure of the archive's output (a full disk, a closed pipe, the
/// compressor), as opposed to one reading a member's data: the caller
/// reports it as the output's, not as the member's that was being
/// written. Carried inside an `io::Error` of the same kind, so a broken
/// pipe is still one.
#[derive(Debug)]
pub struct OutputError(pub io::Error);

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for OutputError {}

fn output(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), OutputError(e))
}

fn poisoned() -> io::Error {
    io::Error::other("newc archive is incomplete after an earlier error")
}

/// The longest member name [`Reader`] takes: the kernel's unpacker
/// refuses names over `PATH_MAX` (init/initramfs.c, `do_header`), so an
/// archive with a longer one is not an initramfs, and a 4 GiB namesize
/// must not make us allocate 4 GiB.
pub const MAX_NAME: u32 = 4096;

/// Reads the members of one newc archive, up to and including its
/// trailer, and nothing after it (the kernel looks for the next archive
/// there). Data a caller does not read is skipped. Every size is a `u32`
/// from 8 hex digits, so the sums below are done in `u64` and cannot
/// overflow; a name over [`MAX_NAME`] or without its NUL is refused.
pub struct Reader<R: BufRead> {
    r: R,
    /// Data bytes of the current member not read yet, then its padding.
    left: u64,
    pad: u64,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(r: R) -> Self {
        Reader {
            r,
            left: 0,
            pad: 0,
            done: false,
        }
    }

    /// The next member's header, or `None` once the trailer is read.
    pub fn next_header(&mut self) -> io::Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        let skip = self.left + self.pad;
        if io::copy(&mut (&mut self.r).take(skip), &mut io::sink())? < skip {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left = 0;
        self.pad = 0;
        let mut h = [0u8; HEADER_LEN];
        self.r.read_exact(&mut h)?;
        if &h[..6] != MAGIC && &h[..6] != b"070702" {
            return Err(bad(format!(
                "no 070701 magic, found {:?}",
                String::from_utf8_lossy(&h[..6])
            )));
        }
        let mut fields = [0u32; 13];
        for (i, f) in fields.iter_mut().enumerate() {
            let digits = &h[6 + 8 * i..14 + 8 * i];
            *f = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| u32::from_str_radix(d, 16).ok())
                .ok_or_else(|| bad(format!("header field {} is not 8 hex digits", i + 1)))?;
        }
        let namesize = fields[11];
        if namesize == 0 || namesize > MAX_NAME {
            return Err(bad(format!("name size {namesize} out of range")));
        }
        // The name and its NUL, padded so the data starts at a multiple
        // of 4 (counted from the archive's start, which is aligned).
        let name_len =
            (HEADER_LEN as u64 + u64::from(namesize)).next_multiple_of(4) - HEADER_LEN as u64;
        let mut name = vec![0u8; name_len as usize];
        self.r.read_exact(&mut name)?;
        name.truncate(namesize as usize);
        if name.pop() != Some(0) || name.contains(&0) {
            return Err(bad("member name is not NUL-terminated".to_string()));
        }
        if name == TRAILER {
            self.done = true;
            return Ok(None);
        }
        let filesize = fields[6];
        self.left = u64::from(filesize);
        self.pad = pad_len(self.left, 4);
        Ok(Some(Header {
            name,
            ino: fields[0],
            mode: fields[1],
            uid: fields[2],
            gid: fields[3],
            nlink: fields[4],
            mtime: fields[5],
            filesize,
            dev_major: fields[7],
            dev_minor: fields[8],
            rdev_major: fields[9],
            rdev_minor: fields[10],
        }))
    }

    /// The input, positioned after the trailer once `next_header` has
    /// returned `None`.
    pub fn into_inner(self) -> R {
        self.r
    }
}

/// The current member's data.
impl<R: BufRead> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad newc cpio header: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &[u8], data: &[u8]) -> Header {
        Header {
            name: name.to_vec(),
            ino: 1,
            mode: 0o100644,
            nlink: 1,
            filesize: data.len() as u32,
            ..Header::default()
        }
    }

    #[test]
    fn header_fields_are_8_upper_hex_digits() {
        let mut h = file(b"a", b"hi\n");
        h.ino = 0x98C085;
        h.mtime = 0x6B0C7A2E;
        h.dev_major = 0xFE;
        let bytes = h.encode().unwrap_or([0; HEADER_LEN]);
        assert_eq!(
            &bytes[..],
            &b"0707010098C085000081A4000000000000000000000001\
6B0C7A2E00000003000000FE00000000000000000000000000000002\
00000000"[..]
        );
    }

    #[test]
    fn layout_matches_gnu_cpio() {
        // What `printf 'a\n' | cpio -o -H newc` writes for a 3-byte file
        // named `a` (ino/dev/mtime zeroed), then the trailer and padding.
        let mut w = Writer::new(Vec::new());
        w.append(&file(b"a", b"hi\n"), &mut &b"hi\n"[..])
            .unwrap_or_else(|e| panic!("{e}"));
        let out = w.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.len(), 512);
        // 110 + "a\0" = 112: already aligned; data 3 bytes + 1 pad.
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..116], b"hi\n\0");
        assert_eq!(&out[116..122], MAGIC);
        // Trailer: nlink 1, namesize 11.
        assert_eq!(&out[116 + 38..116 + 46], b"00000001");
        assert_eq!(&out[116 + 94..116 + 102], b"0000000B");
        assert_eq!(&out[226..237], b"TRAILER!!!\0");
        assert!(out[237..].iter().all(|&b| b == 0));
    }

    #[test]
    fn name_is_padded_so_data_starts_aligned() {
        for len in 1..9 {
            let name = vec![b'x'; len];
            let mut w = Writer::new(Vec::new());
            w.append(&file(&name, b"D"), &mut &b"D"[..])
                .unwrap_or_else(|e| panic!("{e}"));
            let out = w.finish().unwrap_or_else(|e| panic!("{e}"));
            let data_at = (110 + len + 1).div_ceil(4) * 4;
            assert_eq!(out[data_at], b'D', "name length {len}");
            assert!(out[110 + len..data_at].iter().all(|&b| b == 0));
            assert_eq!(&out[data_at + 4..data_at + 10], MAGIC);
        }
    }

    #[test]
    fn short_data_is_an_error_and_poisons() {
        let mut w = Writer::new(Vec::new());
        let err = w.append(&file(b"a", b"four"), &mut &b"fou"[..]);
        assert_eq!(err.map_err(|e| e.kind()), Err(io::ErrorKind::UnexpectedEof));
        assert!(w.append(&file(b"b", b""), &mut &b""[..]).is_err());
        assert!(w.finish().is_err());
    }

    #[test]
    fn long_data_is_an_error() {
        let mut w = Writer::new(Vec::new());
        let err = w.append(&file(b"a", b"ab"), &mut &b"abc"[..]);
        assert_eq!(err.map_err(|e| e.kind()), Err(io::ErrorKind::InvalidData));
        assert!(w.finish().is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        let mut w = Writer::new(Vec::new());
        assert!(w.append(&file(b"", b""), &mut &b""[..]).is_err());
        let mut w = Writer::new(Vec::new());
        assert!(w.append(&file(b"a\0b", b""), &mut &b""[..]).is_err());
    }

    /// A reader that returns one byte per call, as a pipe may.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn short_reads_are_fine() {
        let data = b"hello, world";
        let mut a = Writer::new(Vec::new());
        a.append(&file(b"f", data), &mut Trickle(data))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut b = Writer::new(Vec::new());
        b.append(&file(b"f", data), &mut &data[..])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.finish().ok(), b.finish().ok());
    }

    #[test]
    fn empty_archive_is_one_trailer_block() {
        let out = Writer::new(Vec::new())
            .finish()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.len(), 512);
        assert_eq!(&out[110..121], b"TRAILER!!!\0");
    }

    #[test]
    fn reader_reads_back_what_the_writer_wrote() {
        let mut w = Writer::new(Vec::new());
        let mut a = file(b"bin/sh", b"hello");
        a.uid = 7;
        w.append(&a, &mut &b"hello"[..]).unwrap();
        let mut d = file(b"dir", b"");
        d.mode = 0o40755;
        w.append(&d, &mut &b""[..]).unwrap();
        let mut out = w.finish().unwrap();
        out.extend_from_slice(b"NEXT");
        let mut r = Reader::new(&out[..]);
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(h, a);
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"hello");
        // Data left unread is skipped.
        assert_eq!(r.next_header().unwrap(), Some(d));
        assert_eq!(r.next_header().unwrap(), None);
        assert_eq!(r.next_header().unwrap(), None);
        // Stops after the trailer's name: the block padding follows.
        let rest = r.into_inner();
        assert!(rest.ends_with(b"NEXT") && rest[..rest.len() - 4].iter().all(|&b| b == 0));
    }

    #[test]
    fn reader_refuses_bad_headers() {
        let mut w = Writer::new(Vec::new());
        w.append(&file(b"a", b"123456"), &mut &b"123456"[..])
            .unwrap();
        let good = w.finish().unwrap();
        let first = |bytes: &[u8]| Reader::new(bytes).next_header().map(|_| ());
        assert!(first(&good).is_ok());
        let mut bad_magic = good.clone();
        bad_magic[3] = b'9';
        assert!(first(&bad_magic).is_err());
        let mut bad_hex = good.clone();
        bad_hex[10] = b'g';
        assert!(first(&bad_hex).is_err());
        // namesize 0xFFFFFFFF: refused, not allocated.
        let mut huge = good.clone();
        huge[94..102].copy_from_slice(b"FFFFFFFF");
        assert!(first(&huge).is_err());
        // Truncated inside the data.
        let mut r = Reader::new(&good[..114]);
        assert!(r.next_header().unwrap().is_some());
        assert!(r.next_header().is_err());
    }
}
