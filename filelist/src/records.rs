//! Splitting a byte stream into records, LF- or NUL-terminated.
//!
//! Memory stays bounded whatever the input: a record longer than
//! [`MAX_RECORD`] is an error, not a reason to buffer the whole stream.
//! The last record may lack its terminator, as `sort` and `comm` accept.

use std::io::{self, BufRead};

use bstr::ByteSlice;

/// The longest record accepted. A path is at most `PATH_MAX` (4096) bytes
/// on Linux; this leaves room for odd inputs while refusing a stream that
/// has no terminator at all.
pub const MAX_RECORD: usize = 1 << 20;

/// What ends a record: LF by default, NUL with `-0` (in) or `-z` (out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminator {
    Newline,
    Nul,
}

impl Terminator {
    /// `Nul` when the flag (`-0` or `-z`) is set.
    pub fn nul_if(flag: bool) -> Terminator {
        if flag {
            Terminator::Nul
        } else {
            Terminator::Newline
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Terminator::Newline => b'\n',
            Terminator::Nul => 0,
        }
    }
}

/// Checks that `name` can be written as one record ending in `term`: a
/// newline in a name needs NUL-terminated output, a NUL can never be in a
/// path. The message is the reason; the caller names the path and tool.
pub fn check_name(name: &[u8], term: Terminator) -> Result<(), &'static str> {
    if name.contains(&0) {
        return Err("name contains a NUL byte");
    }
    if term == Terminator::Newline && name.contains(&b'\n') {
        return Err("name contains a newline; use -z for NUL-terminated output");
    }
    Ok(())
}

/// Reads records one at a time into a reused buffer.
pub struct RecordReader<R> {
    inner: R,
    term: u8,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(inner: R, term: Terminator) -> Self {
        RecordReader {
            inner,
            term: term.byte(),
            buf: Vec::new(),
            line: 0,
        }
    }

    /// The 1-based number of the record last returned.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The record last returned by [`Self::next_record`].
    pub fn current(&self) -> &[u8] {
        &self.buf
    }

    /// The next record without its terminator, or `None` at the end.
    pub fn next_record(&mut self) -> io::Result<Option<&[u8]>> {
        let mut buf = std::mem::take(&mut self.buf);
        let more = self.read_into(&mut buf);
        self.buf = buf;
        Ok(if more? { Some(&self.buf) } else { None })
    }

    /// Reads the next record into `buf` (cleared first); `false` at the
    /// end. Lets a caller keep the previous record in another buffer
    /// without copying it.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if buf.is_empty() {
                    return Ok(false);
                }
                break;
            }
            let (take, done) = match avail.find_byte(self.term) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if buf.len() + take > MAX_RECORD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {}: record longer than {} bytes",
                        self.line + 1,
                        MAX_RECORD
                    ),
                ));
            }
            buf.extend_from_slice(&avail[..take]);
            self.inner.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        self.line += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], term: Terminator) -> Vec<Vec<u8>> {
        let mut r = RecordReader::new(input, term);
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec.to_vec());
        }
        out
    }

    #[test]
    fn splits_and_accepts_missing_last_terminator() {
        assert_eq!(
            all(b"a\nb c\nd", Terminator::Newline),
            vec![b"a".to_vec(), b"b c".to_vec(), b"d".to_vec()]
        );
        assert_eq!(
            all(b"a\nb\0c\0", Terminator::Nul),
            vec![b"a\nb".to_vec(), b"c".to_vec()]
        );
        assert!(all(b"", Terminator::Newline).is_empty());
        assert_eq!(all(b"\n", Terminator::Newline), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn short_reads_do_not_split_records() {
        // A reader that returns one byte at a time.
        struct Trickle<'a>(&'a [u8]);
        impl io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let r = io::BufReader::with_capacity(1, Trickle(b"abc\ndef\n"));
        let mut rr = RecordReader::new(r, Terminator::Newline);
        assert_eq!(rr.next_record().unwrap(), Some(&b"abc"[..]));
        assert_eq!(rr.next_record().unwrap(), Some(&b"def"[..]));
        assert_eq!(rr.line(), 2);
        assert_eq!(rr.next_record().unwrap(), None);
    }

    #[test]
    fn refuses_endless_records() {
        let big = vec![b'x'; MAX_RECORD + 10];
        let mut r = RecordReader::new(&big[..], Terminator::Newline);
        let err = r.next_record().unwrap_err();
        assert!(err.to_string().contains("line 1"));
    }

    #[test]
    fn names_with_newlines_need_nul() {
        assert!(check_name(b"a\nb", Terminator::Newline).is_err());
        assert!(check_name(b"a\nb", Terminator::Nul).is_ok());
    }
}
