//! One streaming compressor for the whole workspace (`mkinitrd --compress`,
//! `dockpack image --compress`): gzip, zstd or lz4 (legacy frame), on
//! every core, with output bytes that are a pure function of the input
//! bytes, the method and the level — never of the number of cores or of
//! how the input was cut into `write` calls.
//!
//! How each method stays deterministic while using several threads:
//! - **gzip**: one gzip member (RFC 1952) holding one deflate stream
//!   (RFC 1951), made as pigz makes it: the input is cut into fixed
//!   [`GZIP_BLOCK`]-byte blocks, each deflated on a worker with the
//!   previous 32 KiB of input as its dictionary (`deflateSetDictionary`)
//!   and ended by a sync flush (an empty stored block, so the next block
//!   starts on a byte boundary), the last by `Z_FINISH`; the blocks
//!   concatenate into one stream and their CRC-32s are combined. One
//!   member, not one member per block: the kernel's initramfs unpacker
//!   (init/initramfs.c, `unpack_to_rootfs`) runs the decompressor once per
//!   compressed piece and calls "junk at the end of compressed archive"
//!   when a piece does not end on a cpio entry boundary, which independent
//!   members of fixed-size blocks would not. The header has no name, mtime
//!   0 ("no time stamp", RFC 1952 2.3.1) and OS 3 (Unix).
//! - **zstd**: libzstd's own multithreaded mode (`ZSTD_c_nbWorkers` ≥ 1,
//!   always, even with one core), one frame. Its jobs are cut at sizes
//!   fixed by the parameters (`ZSTD_c_jobSize`, zstd.h), so *streaming*
//!   multithreaded output does not depend on the number of workers, but
//!   it differs from single-threaded mode: zstd's maintainers in
//!   facebook/zstd issues 2238 and 2327 ("the feature supported is that
//!   streaming multithreaded zstd does not depend on nb of threads"; the
//!   one exception, a first call with `ZSTD_e_end`, was fixed there and
//!   does not occur here, where input goes through `ZSTD_e_continue`), and
//!   zstd(1) on `--single-thread`: "Final compressed result is also
//!   slightly different from -T1". Checked here: the tests compare 1, 2,
//!   3 and 4 workers and many write sizes, and show the single-threaded
//!   frame differs. A checksum is included, as the zstd CLI does. 1.5.7's
//!   block pre-splitter is off ([`zstdmt`] says why and what it measured).
//! - **lz4**: the legacy frame the kernel's lib/decompress_unlz4.c reads
//!   and `lz4 -l` writes: the magic `02 21 4C 18`, then independent blocks
//!   of [`LZ4_BLOCK`] (8 MiB) input, each prefixed by its compressed size
//!   (32-bit little-endian), compressed in parallel. lz4_flex has one
//!   level (LZ4's fast compressor at acceleration 1, what `lz4 -1` uses),
//!   so `lz4:1` is the only level there is.
//!
//! Memory stays bounded: at most [`Encoder::in_flight`] blocks are
//! queued, being compressed or waiting to be written (twice the number
//! of threads), so gzip holds about 1.2 MiB per thread (256 KiB blocks,
//! their output and dictionary), lz4 about 32 MiB per thread (the
//! format's 8 MiB blocks and their output), zstd what libzstd's job size
//! for the level needs (`ZSTD_c_jobSize`; 8 MiB jobs at level 3). A
//! queue of 4 gzip blocks per thread instead of 2 measured no faster here.
//!
//! **The bytes depend on the compressor versions**, which the workspace
//! pins exactly (`=x.y.z` in the top Cargo.toml: flate2 with the zlib-rs
//! backend, zlib-rs, zstd and zstd-sys, which carries libzstd, lz4_flex,
//! crc32fast). A new version may compress differently: when one is
//! bumped, run `cargo test -p compress pinned_digests -- --nocapture`,
//! check that the new output still decodes (the other tests), and replace
//! the digests in `tests::pinned_digests` with the ones it prints, saying
//! in the commit that output bytes changed.
//!
//! Dropping an [`Encoder`] without [`Encoder::finish`] writes no trailer,
//! so an interrupted stream never looks complete (a gzip or zstd decoder
//! reports it truncated).

pub mod lz4legacy;
mod zstdmt;

use std::collections::VecDeque;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The compression formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Gzip,
    Zstd,
    Lz4,
}

impl Method {
    /// The levels each method takes. zstd stops at 19: 20-22 are the
    /// `--ultra` levels whose windows (up to 128 MiB) a decompressor, the
    /// kernel's early boot one included, must allocate.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Method::Gzip => 1..=9,
            Method::Zstd => 1..=19,
            Method::Lz4 => 1..=1,
        }
    }

    /// The level when none is given: gzip's own 6, zstd's own 3.
    pub fn default_level(self) -> i32 {
        match self {
            Method::Gzip => 6,
            Method::Zstd => 3,
            Method::Lz4 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Gzip => "gzip",
            Method::Zstd => "zstd",
            Method::Lz4 => "lz4",
        }
    }

    const ALL: [Method; 3] = [Method::Gzip, Method::Zstd, Method::Lz4];
}

/// A method and its level (resolved to the method's default when the
/// text gave none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    pub method: Method,
    pub level: i32,
}

impl Spec {
    pub fn name(&self) -> &'static str {
        self.method.name()
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.method.name(), self.level)
    }
}

/// The forms [`Spec::from_str`] takes, for its messages.
fn valid_forms() -> String {
    let forms: Vec<String> = Method::ALL
        .iter()
        .map(|m| {
            let l = m.levels();
            if l.start() == l.end() {
                format!("{}[:{}]", m.name(), l.start())
            } else {
                format!("{}[:{}-{}]", m.name(), l.start(), l.end())
            }
        })
        .collect();
    format!("give {}, {} or {}", forms[0], forms[1], forms[2])
}

impl FromStr for Spec {
    type Err = String;

    /// `gzip`, `gzip:9`, `zstd`, `zstd:19`, `lz4`, `lz4:1`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let Some(method) = Method::ALL.into_iter().find(|m| m.name() == name) else {
            return Err(format!("unknown compression {s:?}: {}", valid_forms()));
        };
        let level = match level {
            None => method.default_level(),
            Some(l) => match l.parse::<i32>() {
                Ok(n) if method.levels().contains(&n) && !l.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "bad {} level {l:?}: {}",
                        method.name(),
                        valid_forms()
                    ))
                }
            },
        };
        Ok(Spec { method, level })
    }
}

/// The gzip block size: pigz's default is 128 KiB; a larger block halves
/// the hand-offs between threads and the 5-byte sync-flush markers, and
/// the 32 KiB dictionary keeps the ratio within a few bytes per block of
/// one-thread deflate either way.
pub const GZIP_BLOCK: usize = 256 * 1024;

/// The lz4 legacy frame's block size (lz4 `LEGACY_BLOCKSIZE`; the kernel's
/// lib/decompress_unlz4.c decodes each block into a buffer of this size).
pub const LZ4_BLOCK: usize = 8 << 20;

/// The lz4 legacy frame's magic, little-endian `0x184C2102`.
pub(crate) const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// Deflate's window: the dictionary each gzip block gets.
const DEFLATE_WINDOW: usize = 32 * 1024;

/// A streaming compressor writing to `W`; see the crate doc.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Blocks(Blocks<W>),
    Zstd(zstdmt::Writer<W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder using every core (`available_parallelism`).
    pub fn new(spec: Spec, out: W) -> io::Result<Self> {
        let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        Self::with_threads(spec, threads, out)
    }

    /// An encoder using `threads` worker threads. The output does not
    /// depend on `threads`; this exists so tests can show that.
    pub fn with_threads(spec: Spec, threads: NonZeroUsize, out: W) -> io::Result<Self> {
        if !spec.method.levels().contains(&spec.level) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bad {} level {}: {}",
                    spec.name(),
                    spec.level,
                    valid_forms()
                ),
            ));
        }
        let threads = threads.get().min(256);
        let inner = match spec.method {
            Method::Gzip => Inner::Blocks(Blocks::new(
                Kind::Gzip {
                    level: spec.level as u32,
                },
                threads,
                out,
            )?),
            Method::Lz4 => Inner::Blocks(Blocks::new(Kind::Lz4, threads, out)?),
            Method::Zstd => {
                // nbWorkers ≥ 1 always: the output of multithreaded mode
                // does not depend on the worker count, but differs from
                // nbWorkers = 0 (see the crate doc).
                Inner::Zstd(zstdmt::Writer::new(out, spec.level, threads)?)
            }
        };
        Ok(Encoder { inner })
    }

    /// Compresses what is buffered, writes the trailer and returns the
    /// writer (not flushed).
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Blocks(b) => b.finish(),
            Inner::Zstd(z) => z.finish(),
        }
    }

    /// The most blocks queued or being compressed at once for `threads`
    /// worker threads.
    pub fn in_flight(threads: usize) -> usize {
        2 * threads
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Blocks(b) => b.write(data),
            Inner::Zstd(z) => z.write(data),
        }
    }

    /// Writes out the blocks already compressed; the current partial
    /// block stays buffered, since cutting it here would make the output
    /// depend on when flush was called.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Blocks(b) => b.out.flush(),
            Inner::Zstd(z) => z.flush(),
        }
    }
}

/// What a block worker does with a block.
#[derive(Clone, Copy)]
enum Kind {
    Gzip {
        level: u32,
    },
    Lz4,
    /// A test's worker: fails or panics on a chosen block.
    #[cfg(test)]
    Failing {
        fail_at: u64,
        panic: bool,
    },
}

impl Kind {
    fn block_size(self) -> usize {
        match self {
            Kind::Gzip { .. } => GZIP_BLOCK,
            Kind::Lz4 => LZ4_BLOCK,
            #[cfg(test)]
            Kind::Failing { .. } => 1000,
        }
    }
}

/// One block of input for a worker.
struct Job {
    /// The block's number (read by the tests' failing worker).
    #[cfg_attr(not(test), allow(dead_code))]
    seq: u64,
    data: Vec<u8>,
    /// gzip: the 32 KiB of input before `data` (empty for the first).
    dict: Vec<u8>,
    last: bool,
    reply: Sender<io::Result<Done>>,
}

/// A compressed block.
struct Done {
    bytes: Vec<u8>,
    /// gzip: the CRC-32 of the block's input.
    crc: crc32fast::Hasher,
}

/// The worker threads; dropping this ends them.
struct Workers {
    jobs: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the queue ends each worker's loop; a worker that
        // panicked has already been reported through its reply channel.
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Fixed-size blocks compressed on worker threads, written in order.
struct Blocks<W: Write> {
    out: W,
    kind: Kind,
    workers: Workers,
    /// Replies of the blocks sent, oldest first.
    pending: VecDeque<Receiver<io::Result<Done>>>,
    max_pending: usize,
    buf: Vec<u8>,
    dict: Vec<u8>,
    seq: u64,
    crc: crc32fast::Hasher,
    /// gzip: the input's size so far.
    size: u64,
    /// Set once a block failed: nothing more is written.
    failed: bool,
}

impl<W: Write> Blocks<W> {
    fn new(kind: Kind, threads: usize, mut out: W) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let h = std::thread::Builder::new()
                .name(format!("compress-{i}"))
                .spawn(move || work(kind, &rx))?;
            handles.push(h);
        }
        let workers = Workers {
            jobs: Some(tx),
            handles,
        };
        match kind {
            Kind::Gzip { level } => {
                // RFC 1952 2.3: ID1 ID2, CM 8 (deflate), FLG 0 (no name,
                // comment or extra), MTIME 0, XFL (2: slowest, 4: fastest,
                // as gzip sets them), OS 3 (Unix).
                let xfl = match level {
                    9 => 2,
                    1 => 4,
                    _ => 0,
                };
                out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
            }
            Kind::Lz4 => out.write_all(&LZ4_LEGACY_MAGIC)?,
            #[cfg(test)]
            Kind::Failing { .. } => {}
        }
        Ok(Blocks {
            out,
            kind,
            workers,
            pending: VecDeque::new(),
            max_pending: Encoder::<W>::in_flight(threads),
            buf: Vec::with_capacity(kind.block_size()),
            dict: Vec::new(),
            seq: 0,
            crc: crc32fast::Hasher::new(),
            size: 0,
            failed: false,
        })
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("compression failed earlier"));
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        let size = self.kind.block_size();
        let take = (size - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == size {
            self.submit(false)?;
        }
        Ok(take)
    }

    /// Sends the buffered block to the workers, first writing out the
    /// oldest ones while too many are in flight.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let size = self.kind.block_size();
        let data = std::mem::replace(
            &mut self.buf,
            if last {
                Vec::new()
            } else {
                Vec::with_capacity(size)
            },
        );
        let dict = match self.kind {
            Kind::Gzip { .. } => {
                // The next block's dictionary: the last 32 KiB of input,
                // which may reach back into this block's own dictionary
                // when this block is shorter (only the last can be).
                let mut next = Vec::with_capacity(DEFLATE_WINDOW);
                let from_dict = DEFLATE_WINDOW
                    .saturating_sub(data.len())
                    .min(self.dict.len());
                next.extend_from_slice(&self.dict[self.dict.len() - from_dict..]);
                next.extend_from_slice(&data[data.len().saturating_sub(DEFLATE_WINDOW)..]);
                std::mem::replace(&mut self.dict, next)
            }
            _ => Vec::new(),
        };
        let (reply, rx) = mpsc::channel();
        let job = Job {
            seq: self.seq,
            data,
            dict,
            last,
            reply,
        };
        self.seq += 1;
        self.size = self.size.wrapping_add(job.data.len() as u64);
        let sent = self.workers.jobs.as_ref().map(|j| j.send(job));
        if !matches!(sent, Some(Ok(()))) {
            self.failed = true;
            return Err(io::Error::other("the compression threads are gone"));
        }
        self.pending.push_back(rx);
        Ok(())
    }

    /// Waits for the oldest block and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let done = match rx.recv() {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                self.failed = true;
                return Err(e);
            }
            Err(_) => {
                // The worker dropped the reply without sending: it panicked.
                self.failed = true;
                return Err(io::Error::other("a compression thread panicked"));
            }
        };
        self.crc.combine(&done.crc);
        let r = self.out.write_all(&done.bytes);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn finish(mut self) -> io::Result<W> {
        self.check()?;
        match self.kind {
            // The last gzip block carries BFINAL, so there always is one,
            // empty for empty input or input of whole blocks.
            Kind::Gzip { .. } => self.submit(true)?,
            // The legacy frame has no end marker; an empty block would be
            // refused by `lz4 -d` (a zero-size block does not decode).
            _ => {
                if !self.buf.is_empty() {
                    self.submit(true)?
                }
            }
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        if let Kind::Gzip { .. } = self.kind {
            // RFC 1952 2.3.1: CRC32 and ISIZE (the input size mod 2^32),
            // little-endian.
            let size = self.size as u32;
            let crc = self.crc.clone().finalize();
            self.out.write_all(&crc.to_le_bytes())?;
            self.out.write_all(&size.to_le_bytes())?;
        }
        let Blocks { out, workers, .. } = self;
        drop(workers);
        Ok(out)
    }
}

/// A worker's loop: compress jobs until the queue closes.
fn work(kind: Kind, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result = compress_block(kind, &job);
        // The encoder may be gone (dropped after an error): nothing to tell.
        let _ = job.reply.send(result);
    }
}

fn compress_block(kind: Kind, job: &Job) -> io::Result<Done> {
    let mut crc = crc32fast::Hasher::new();
    let bytes = match kind {
        Kind::Gzip { level } => {
            crc.update(&job.data);
            deflate_block(level, &job.dict, &job.data, job.last)?
        }
        Kind::Lz4 => {
            let bound = lz4_flex::block::get_maximum_output_size(job.data.len());
            let mut out = vec![0u8; 4 + bound];
            let n = lz4_flex::block::compress_into(&job.data, &mut out[4..])
                .map_err(|e| io::Error::other(format!("lz4: {e}")))?;
            let size = u32::try_from(n).map_err(|_| io::Error::other("lz4 block too large"))?;
            out[..4].copy_from_slice(&size.to_le_bytes());
            out.truncate(4 + n);
            out
        }
        #[cfg(test)]
        Kind::Failing { fail_at, panic } => {
            if job.seq == fail_at {
                if panic {
                    panic!("test worker panics on block {fail_at}");
                }
                return Err(io::Error::other(format!(
                    "test worker fails on block {fail_at}"
                )));
            }
            job.data.clone()
        }
    };
    Ok(Done { bytes, crc })
}

/// Raw deflate of one block: `dict` primes the window, a sync flush ends
/// it on a byte boundary (or the stream's end when `last`).
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict)
            .map_err(|e| io::Error::other(format!("deflate dictionary: {e}")))?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // deflateBound for stored blocks plus the flush marker; one call
    // normally does it, the loop covers the rest.
    let mut out = Vec::with_capacity(data.len() + (data.len() >> 12) + 64);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let all_in = c.total_in() as usize == data.len();
        let done = if last {
            status == Status::StreamEnd
        } else {
            // zlib: a flush is complete when it left output space unused.
            all_in && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

#[cfg(test)]
mod tests;
