//! Hashing regular files several at a time on one thread.
//!
//! Each hashing thread keeps up to [`LANES`] files open, each with its own
//! read buffer, and advances all of them together through the
//! multi-message kernel of [`crate::sha256x`] (one SHA-256 chain leaves the
//! core idle most of the time; see there). A file that ends leaves its
//! lane, and the thread takes the next job for it, so small and large
//! files mix freely.
//!
//! Every file is checked as it was before: it must be the file the
//! resolver's `fstatat` saw (dev/ino), and its size and ctime must not
//! change between that `fstatat` and the end of the read, or its line
//! would describe content that no longer exists and a layer built from it
//! later would silently differ. The checks cost three syscalls per file
//! besides the reads (`openat2`, fstat, close): the file is opened beneath
//! DIR through no symlink (`filelist::tree::Opener`), the one `fstat`
//! after the last read is compared with the `fstatat` from before the
//! open, and each read asks for one byte more than the size still
//! expected, so a short read at the expected size is the end of the file
//! without a final `read` that returns 0.

use std::fs::File;
use std::io::{self, Read};

use anyhow::{anyhow, Result};
use filelist::entry::{quote, Digest, Fields};
use filelist::tree::{DiskStat, Member, Opener};

use crate::sha256x::{self, INIT, LANES};

/// Bytes read per file per `read`: big enough that the syscalls are a
/// small share of the hashing time, small enough that the buffers of all
/// lanes stay in a core's 1 MiB L2 cache together.
const CHUNK: usize = 128 * 1024;

/// A regular file being hashed, in one lane.
pub struct Stream {
    /// The job's sequence number, for the result.
    pub seq: u64,
    /// The input line, for messages.
    line: u64,
    name: Vec<u8>,
    file: File,
    /// The `fstatat` from before the open.
    before: DiskStat,
    fields: Fields,
    state: [u32; 8],
    buf: Vec<u8>,
    /// `buf[start..end]` is read and not yet hashed.
    start: usize,
    end: usize,
    /// Bytes read so far.
    total: u64,
    eof: bool,
}

impl Stream {
    /// Opens `member`'s content to hash it. `buf` is a spare buffer to
    /// reuse, if the caller has one.
    pub fn open(
        seq: u64,
        line: u64,
        opener: &Opener,
        name: Vec<u8>,
        member: Member,
        buf: Option<Vec<u8>>,
    ) -> Result<Stream> {
        // Beneath DIR, through no symlink; O_NONBLOCK: should the name
        // have become a FIFO since it was examined, open must not hang.
        let file = opener
            .open_unchecked(&member)
            .map_err(|e| anyhow!("stdin line {line}: {}: {e}", quote(&name)))?;
        Ok(Stream {
            seq,
            line,
            name,
            file,
            before: member.disk,
            fields: member.fields(None),
            state: INIT,
            buf: buf.unwrap_or_else(|| vec![0; CHUNK]),
            start: 0,
            end: 0,
            total: 0,
            eof: false,
        })
    }

    /// The examined size, and the bytes of it not hashed yet.
    fn progress(&self) -> (u64, u64) {
        let size = self.before.size;
        let hashed = self.total - (self.end - self.start) as u64;
        (size, size.saturating_sub(hashed))
    }

    /// Reads until at least one whole block waits to be hashed; `None`
    /// then, or the file's result once it has been read to the end (or
    /// could not be). The buffer is given back with the result.
    fn fill(&mut self) -> Option<Result<Fields>> {
        let size = self.before.size;
        loop {
            if self.end - self.start >= 64 {
                return None;
            }
            if self.eof || self.total > size {
                return Some(self.finish());
            }
            // Fewer than 64 bytes are left: move them to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            // One byte past the expected end: a file that grew shows it
            // here, and a read shorter than asked at the expected size is
            // the end.
            let room = self.buf.len() - self.end;
            let want = usize::try_from((size - self.total).saturating_add(1))
                .map_or(room, |w| w.min(room));
            match self.file.read(&mut self.buf[self.end..self.end + want]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    self.total += n as u64;
                    if n < want && self.total == size {
                        self.eof = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Some(Err(self.error(format_args!("cannot read: {}", os_text(&e)))))
                }
            }
        }
    }

    /// `stdin line N: "NAME": why`.
    fn error(&self, why: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("stdin line {}: {}: {why}", self.line, quote(&self.name))
    }

    /// The result once every byte is read: the checks, then the digest.
    fn finish(&mut self) -> Result<Fields> {
        let size = self.before.size;
        let after = nix::sys::stat::fstat(&self.file)
            .map_err(|e| self.error(format_args!("cannot stat: {}", e.desc())))?;
        let after = DiskStat::from_stat(&after);
        if (after.dev, after.ino) != (self.before.dev, self.before.ino)
            || after.file_type() != Some(filelist::entry::FileType::Regular)
        {
            return Err(self.error("file was replaced while being listed"));
        }
        if self.total != size || after.size != size || after.ctime != self.before.ctime {
            return Err(self.error(format_args!(
                "file changed while being hashed (size {} when listed, {}{} read, {} now)",
                size,
                if self.total > size { "at least " } else { "" },
                self.total,
                after.size
            )));
        }
        let tail = self
            .buf
            .get(self.start..self.end)
            .ok_or_else(|| self.error("internal error: bad buffer bounds"))?;
        let mut fields = self.fields;
        fields.digest = Digest::Sha256(sha256x::finish(self.state, tail, self.total));
        Ok(fields)
    }
}

/// An io error's text without Rust's " (os error N)" suffix.
fn os_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Up to [`LANES`] files being hashed together by one thread.
#[derive(Default)]
pub struct Lanes {
    streams: Vec<Stream>,
    /// Buffers of streams that ended, for the next ones.
    spare: Vec<Vec<u8>>,
}

impl Lanes {
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.streams.len() >= LANES
    }

    pub fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        self.spare.pop()
    }

    pub fn add(&mut self, stream: Stream) {
        self.streams.push(stream);
    }

    /// The size and remaining bytes of the file with most left to hash.
    pub fn largest(&self) -> Option<(u64, u64)> {
        self.streams
            .iter()
            .map(Stream::progress)
            .max_by_key(|&(_, remaining)| remaining)
    }

    /// Reads what the lanes need, hands every file that ended to `done`
    /// (with its sequence number and `lstat` size), and hashes as many
    /// whole blocks as all remaining lanes have ready.
    pub fn step(&mut self, mut done: impl FnMut(u64, u64, Result<Fields>)) {
        let mut i = 0;
        while i < self.streams.len() {
            match self.streams[i].fill() {
                None => i += 1,
                Some(result) => {
                    let stream = self.streams.swap_remove(i);
                    done(stream.seq, stream.before.size, result);
                    self.spare.push(stream.buf);
                }
            }
        }
        let n = self.streams.len();
        if n == 0 {
            return;
        }
        let mut states = [INIT; LANES];
        let mut data: [&[u8]; LANES] = [&[]; LANES];
        for ((state, data), s) in states.iter_mut().zip(&mut data).zip(&self.streams) {
            *state = s.state;
            *data = &s.buf[s.start..s.end];
        }
        let blocks = sha256x::compress(&mut states[..n], &data[..n]);
        for (s, state) in self.streams.iter_mut().zip(states) {
            s.state = state;
            s.start += blocks * 64;
        }
    }
}
