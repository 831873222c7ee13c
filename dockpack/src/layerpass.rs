//! One read of a layer tar: checked, hashed and handed to a sink at once.
//!
//! `dockpack image` must know each layer's SHA-256 (its blob name and
//! diff_id) and that it is a whole tar. Reading and hashing on one thread
//! costs about what `openssl dgst -sha256` does; writing the blob out
//! afterwards used to add a second pass on top (2.0x the time of one
//! read+hash; the target `scripts/bench/dockpack.sh` checks is 1.2x).
//! Here the work is split over two threads:
//!
//! - the *reader* `pread`s the file in chunks and, when a sink is given,
//!   writes each chunk out (`pwrite` at the blob's offset in the image, or
//!   into a blob file) before passing the chunk on;
//! - the *hasher* (the calling thread) walks the tar headers over the same
//!   chunks ([`crate::tarfmt::walk`]) and feeds every byte to SHA-256.
//!
//! The bytes hashed are the bytes written, the very same buffers: the blob
//! cannot disagree with its digest even if the file changes underneath
//! (a `copy_file_range` beside the hasher would read the file a second
//! time; it was also measured slower here, as the hasher then has to do
//! the `read` copy itself and SHA-256 is already the longest job). A
//! change of the file during the pass is still refused, by comparing its
//! identity (device, inode, size, mtime, ctime) before and after.
//!
//! Chunks are recycled through a return channel, so memory stays at
//! [`CHUNKS`] x [`CHUNK`] whatever the layer's size.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};

use filtertool::quote::quote_path;

use crate::tarfmt;

/// Bytes per chunk: large enough that the per-chunk syscalls and channel
/// hand-offs vanish, small enough to stay in cache between the reader's
/// copy and the hasher's pass.
pub const CHUNK: usize = 256 << 10;
/// Chunks in flight between the two threads.
pub const CHUNKS: usize = 8;

/// What must not change about a layer file while it is read: the stat
/// fields that a write, a truncation or a replacement moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    pub size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    pub fn of(m: &fs::Metadata) -> Identity {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A layer file, open and stat'ed, not read yet.
#[derive(Debug)]
pub struct LayerFile {
    pub path: PathBuf,
    pub file: File,
    pub identity: Identity,
}

impl LayerFile {
    /// Opens `path`, which must be a regular file. The open is
    /// `O_NONBLOCK` so that a FIFO with no writer cannot hang it
    /// (open(2): "O_NONBLOCK ... the open() for reading-only returns
    /// without delay"), and anything that is not a regular file is
    /// refused before a byte is read: a FIFO or `/dev/zero` has no end
    /// to read to, and a layer's blob name (its digest) comes before its
    /// bytes in the image, so a stream would have to be spooled without
    /// bound. `dockpack image <(dockpack layer …)` is refused for the
    /// same reason: write the layer to a file first.
    pub fn open(path: &Path) -> Result<LayerFile> {
        let shown = quote_path(path);
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .with_context(|| format!("cannot open layer {shown}"))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat layer {shown}"))?;
        if !meta.is_file() {
            bail!(
                "layer {shown}: is {}, not a regular file (write the layer to a file first)",
                filtertool::file_type_name(&meta)
            );
        }
        Ok(LayerFile {
            path: path.to_path_buf(),
            file,
            identity: Identity::of(&meta),
        })
    }

    /// Fails unless the file is still the one that was opened.
    pub fn check_unchanged(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .with_context(|| format!("cannot stat layer {}", quote_path(&self.path)))?;
        if Identity::of(&now) != self.identity {
            bail!(
                "layer {} changed while the image was being written",
                quote_path(&self.path)
            );
        }
        Ok(())
    }
}

/// A layer after its pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashed {
    /// Lowercase hex SHA-256 of the whole file.
    pub digest: String,
    pub size: u64,
}

/// Where the reader puts each chunk: `sink(bytes, offset in the layer)`.
pub type Sink<'a> = dyn FnMut(&[u8], u64) -> Result<()> + Send + 'a;

struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

/// How the reader thread ended without an error of its own.
enum Fed {
    /// The whole file went through; this many bytes.
    Done(u64),
    /// The hasher stopped listening (it found the tar bad): its error is
    /// the one to report.
    Stopped,
}

/// `pread`s into `buf` until it is full or the file ends.
fn read_full_at(file: &File, buf: &mut [u8], mut at: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                at += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The reader thread's loop.
fn feed(
    layer: &LayerFile,
    sink: Option<&mut Sink<'_>>,
    tx: mpsc::SyncSender<Chunk>,
    back: mpsc::Receiver<Vec<u8>>,
) -> Result<Fed> {
    let mut sink = sink;
    let mut made = 0;
    let mut pos: u64 = 0;
    loop {
        let mut buf = if made < CHUNKS {
            made += 1;
            vec![0u8; CHUNK]
        } else {
            match back.recv() {
                Ok(b) => b,
                Err(_) => return Ok(Fed::Stopped),
            }
        };
        let n = read_full_at(&layer.file, &mut buf, pos)
            .with_context(|| format!("reading layer {}", quote_path(&layer.path)))?;
        if n == 0 {
            break;
        }
        if pos + n as u64 > layer.identity.size {
            bail!(
                "layer {} grew while the image was being written",
                quote_path(&layer.path)
            );
        }
        if let Some(s) = sink.as_mut() {
            s(&buf[..n], pos)?;
        }
        pos += n as u64;
        if tx.send(Chunk { buf, len: n }).is_err() {
            return Ok(Fed::Stopped);
        }
        if n < CHUNK {
            break;
        }
    }
    Ok(Fed::Done(pos))
}

/// The hasher's view of the chunks: a `Read` for the tar headers, and a
/// [`Chunks::skip`] that hashes member data without copying it.
struct Chunks {
    rx: mpsc::Receiver<Chunk>,
    back: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    len: usize,
    pos: usize,
    hasher: Sha256,
    count: u64,
}

impl Chunks {
    /// Makes sure the current chunk has bytes left; false at the end.
    fn fill(&mut self) -> bool {
        while self.pos == self.len {
            let used = std::mem::take(&mut self.buf);
            if used.capacity() > 0 {
                // The channel holds CHUNKS, as many buffers as exist, so
                // this never blocks; an error means the reader is gone.
                let _ = self.back.send(used);
            }
            match self.rx.recv() {
                Ok(c) => {
                    self.buf = c.buf;
                    self.len = c.len.min(self.buf.len());
                    self.pos = 0;
                }
                Err(_) => return false,
            }
        }
        true
    }

    fn consume(&mut self, n: usize) {
        let end = self.pos + n;
        self.hasher.update(&self.buf[self.pos..end]);
        self.pos = end;
        self.count += n as u64;
    }

    /// Passes `n` bytes of member data through the hasher.
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            if !self.fill() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ends inside a member's data (truncated?)",
                ));
            }
            let k = n.min((self.len - self.pos) as u64) as usize;
            self.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    /// Hashes whatever is left (GNU tar pads archives to 10 KiB records
    /// after the end marker: it is part of the blob too).
    fn drain(&mut self) {
        while self.fill() {
            self.consume(self.len - self.pos);
        }
    }
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.fill() {
            return Ok(0);
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.consume(n);
        Ok(n)
    }
}

/// Reads `layer` once: checks it is a whole tar, hashes it, and gives
/// every byte to `sink` (on the reader thread) if there is one. Fails if
/// the file changed while it was read.
pub fn read_layer(layer: &LayerFile, sink: Option<&mut Sink<'_>>) -> Result<Hashed> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(CHUNKS);
    let (back_tx, back_rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS);
    let (fed, walked, hashed) = std::thread::scope(|s| {
        let reader = s.spawn(move || feed(layer, sink, tx, back_rx));
        // The hasher's channel ends are dropped at the end of this block,
        // so a reader waiting on them wakes up when the walk fails.
        let (walked, hashed) = {
            let mut chunks = Chunks {
                rx,
                back: back_tx,
                buf: Vec::new(),
                len: 0,
                pos: 0,
                hasher: Sha256::new(),
                count: 0,
            };
            let walked = tarfmt::walk(&mut chunks, |c, n| c.skip(n), |_, _| Ok(true));
            if walked.is_ok() {
                chunks.drain();
            }
            let digest: [u8; 32] = chunks.hasher.finalize().into();
            (walked, (filelist::hex::encode(&digest), chunks.count))
        };
        let fed = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the reading thread failed")));
        (fed, walked, hashed)
    });
    // The reader's own failure (I/O, a full disk) explains a short
    // stream better than the walk's "truncated?" does.
    // Then a change of the file, which explains a bad tar too.
    let fed = fed?;
    layer.check_unchanged()?;
    walked.map_err(|e| anyhow!("layer {}: {e}", quote_path(&layer.path)))?;
    let (digest, size) = hashed;
    match fed {
        Fed::Done(n) if n == size && n == layer.identity.size => {}
        _ => bail!(
            "layer {} changed while the image was being written",
            quote_path(&layer.path)
        ),
    }
    Ok(Hashed { digest, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    fn sha256_hex(bytes: &[u8]) -> String {
        let d: [u8; 32] = Sha256::digest(bytes).into();
        filelist::hex::encode(&d)
    }

    /// A tar of one member of `size` bytes of `fill`, plus `tail` bytes.
    fn tar_of(size: usize, tail: usize) -> Vec<u8> {
        let m = tarfmt::Member {
            name: b"f",
            kind: tarfmt::Kind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: size as u64,
            mtime: 0,
            link: b"",
            major: 0,
            minor: 0,
        };
        let mut out = Vec::new();
        tarfmt::write_header(&mut out, &m).unwrap();
        out.extend((0..size).map(|i| (i % 251) as u8));
        out.extend_from_slice(&[0u8; tarfmt::BLOCK][..tarfmt::padding(size as u64)]);
        tarfmt::write_end(&mut out).unwrap();
        out.resize(out.len() + tail, 0);
        out
    }

    fn layer_file(bytes: &[u8]) -> (tempfile::TempDir, LayerFile) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.tar");
        fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        let l = LayerFile::open(&p).unwrap();
        (dir, l)
    }

    #[test]
    fn digest_and_sink_see_every_byte_once() {
        // Sizes around the chunk boundary, and many chunks (more than
        // CHUNKS, so buffers are recycled).
        for (size, tail) in [
            (0, 0),
            (100, 9216),
            (CHUNK - 1536, 0),
            (CHUNK, 0),
            (CHUNK * CHUNKS * 3 + 7, 512),
        ] {
            let bytes = tar_of(size, tail);
            let (_d, l) = layer_file(&bytes);
            let copy = Mutex::new(vec![0u8; bytes.len()]);
            let mut sink = |b: &[u8], at: u64| {
                let mut c = copy.lock().unwrap();
                c[at as usize..at as usize + b.len()].copy_from_slice(b);
                Ok(())
            };
            let h = read_layer(&l, Some(&mut sink)).unwrap();
            assert_eq!(h.size, bytes.len() as u64);
            assert_eq!(h.digest, sha256_hex(&bytes));
            assert!(copy.into_inner().unwrap() == bytes, "size {size}");
            let h2 = read_layer(&l, None).unwrap();
            assert_eq!(h, h2);
        }
    }

    #[test]
    fn bad_tars_are_refused_by_name() {
        let good = tar_of(CHUNK * 3, 0);
        for (bytes, want) in [
            (good[..good.len() - 1024].to_vec(), "end-of-archive"),
            (good[..CHUNK * 2].to_vec(), "truncated"),
            (vec![b'x'; CHUNK * 20], "checksum"),
            (Vec::new(), "truncated"),
        ] {
            let (_d, l) = layer_file(&bytes);
            let e = read_layer(&l, None).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains("l.tar") && msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn a_sink_error_wins_and_stops_the_pass() {
        let bytes = tar_of(CHUNK * CHUNKS * 4, 0);
        let (_d, l) = layer_file(&bytes);
        let mut calls = 0;
        let mut sink = |_: &[u8], _: u64| {
            calls += 1;
            if calls == 3 {
                bail!("disk full (test)");
            }
            Ok(())
        };
        let e = read_layer(&l, Some(&mut sink)).unwrap_err();
        assert_eq!(format!("{e:#}"), "disk full (test)");
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_file_changed_after_open_is_refused() {
        let bytes = tar_of(1000, 0);
        let (d, l) = layer_file(&bytes);
        let mut more = bytes.clone();
        more.extend_from_slice(&[0u8; 512]);
        fs::write(d.path().join("l.tar"), &more).unwrap();
        let e = format!("{:#}", read_layer(&l, None).unwrap_err());
        assert!(e.contains("l.tar\" grew while"), "{e}");
        fs::write(d.path().join("l.tar"), &bytes[..512]).unwrap();
        let e = format!("{:#}", read_layer(&l, None).unwrap_err());
        assert!(e.contains("l.tar\" changed while"), "{e}");
    }

    #[test]
    fn pipes_are_refused_before_reading() {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("head -c 1024 /dev/zero")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(child.stdout.as_ref().unwrap());
        let e = LayerFile::open(Path::new(&format!("/proc/self/fd/{fd}"))).unwrap_err();
        drop(child.stdout.take());
        child.wait().unwrap();
        let msg = format!("{e:#}");
        assert!(msg.contains("is a FIFO, not a regular file"), "{msg}");
    }
}
