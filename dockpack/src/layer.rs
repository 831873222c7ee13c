//! `dockpack layer`: one layer tar from a list on stdin.
//!
//! The list (lines as `fileids`/`layerdiff` print them, or plain names as
//! `find` prints them) decides what goes in and in which order; for list
//! lines it also decides mode, owner and (for devices) the device number,
//! because a tree built without root has none of those on disk
//! (docs/DESIGN.md, "The list format", ownership without root). File
//! content comes from `-C DIR` and is checked against the list's SHA-256
//! as it streams: a file that
//! changed after it was listed is an error, never a silently different
//! layer. The hashing runs on a second thread while this one reads and
//! writes, so verifying costs little wall time on two cores (the target
//! `scripts/bench/dockpack.sh` checks: not slower than GNU tar).
//!
//! An error after the first byte leaves a partial archive on stdout; the
//! end-of-archive blocks are then never written, a block that no tar
//! reader accepts is written instead ([`tarfmt::poison_block`]), and the
//! last chunk of a file whose digest does not match is held back, so no
//! loader can take the output for a complete layer.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{anyhow, bail, Context, Result};
use filelist::entry::{quote, FileType, Input};
use filelist::owner::Ownership;
use filelist::sorted::OrderCheck;
use filelist::tree::{check_name, Member as Found, Rules, Tree};
use filelist::xattr::{Policy, XattrSet};
use filelist::{RecordReader, Terminator};
use sha2::{Digest as _, Sha256};

use crate::tarfmt::{self, Kind, Member};

/// What `dockpack layer` was asked to do.
#[derive(Debug, Default)]
pub struct LayerOptions {
    /// The directory that list names are relative to.
    pub dir: PathBuf,
    /// NUL-terminated input records.
    pub nul: bool,
    /// `--owner` / `--fakeroot`. A list line already carries what
    /// fakeroot recorded, so for it `--fakeroot` only checks that the
    /// types agree; `--owner` overrides the owner of every entry.
    pub ownership: Ownership,
    /// Use each file's mtime instead of `epoch`.
    pub keep_mtime: bool,
    /// `SOURCE_DATE_EPOCH`, or 0.
    pub epoch: u64,
    /// Which extended attributes are read, checked against a list line's
    /// `+XATTRS` digest, and written as pax `SCHILY.xattr.*` records.
    pub xattrs: Policy,
}

const CHUNK: usize = 256 * 1024;

/// A writer that remembers whether anything reached it.
struct Counting<'a, W: Write + ?Sized> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write + ?Sized> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads records from `input` and writes the layer to `out`. On error the
/// output, if any was written, ends in a poison block.
pub fn write_layer<R: BufRead, W: Write + ?Sized>(
    opts: &LayerOptions,
    input: R,
    out: &mut W,
) -> Result<()> {
    let mut counting = Counting {
        inner: out,
        written: 0,
    };
    let mut packer = Packer::new(opts)?;
    let result = packer.pack(input, &mut counting);
    match result {
        Ok(()) => {
            tarfmt::write_end(&mut counting).context("writing stdout")?;
            counting.flush().context("writing stdout")?;
            Ok(())
        }
        Err(e) => {
            if counting.written > 0 && !filtertool::is_broken_pipe(&e) {
                // Finish the member being written (with zeros) so that
                // the poison block lands where a header is expected:
                // read as file data it would poison nothing.
                let zeros = [0u8; tarfmt::BLOCK];
                let mut owed = packer.owed + packer.owed_pad;
                while owed > 0 {
                    let n = owed.min(tarfmt::BLOCK as u64) as usize;
                    if counting.write_all(&zeros[..n]).is_err() {
                        break;
                    }
                    owed -= n as u64;
                }
                let _ = counting.write_all(&tarfmt::poison_block());
                let _ = counting.flush();
            }
            Err(e)
        }
    }
}

struct Packer<'a> {
    opts: &'a LayerOptions,
    /// (dev, ino) of multiply-linked files already written → member name.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Member names of the symlinks written so far.
    symlinks: HashSet<Vec<u8>>,
    /// The chunk buffers of [`Packer::regular_inline`] (the last chunk is
    /// held back in one while the next read goes to the other).
    buf: Vec<u8>,
    spare: Vec<u8>,
    /// The line number and name of the entry being packed.
    line: u64,
    name: Vec<u8>,
    /// Writing out the hashing thread's items failed (the error names
    /// the file already).
    settle_failed: bool,
    /// Started at the first list line of a regular file.
    hasher: Option<HashThread>,
    /// Data bytes the member being written still owes its header.
    owed: u64,
    /// The padding after it.
    owed_pad: u64,
    /// `-C DIR`, the only way records become members.
    tree: Tree,
    /// The extended attributes of the entry being written, for its
    /// header (the resolver read them and checked them against the list).
    xattrs: XattrSet,
    /// Records come sorted, as `layerdiff` wants lists: tar readers need
    /// a directory before what it holds, and a name twice is two members.
    order: OrderCheck,
}

impl<'a> Packer<'a> {
    /// Opens `-C DIR`: a DIR that is missing or not a directory fails
    /// here, before any input is read.
    fn new(opts: &'a LayerOptions) -> Result<Packer<'a>> {
        let rules = Rules {
            ownership: opts.ownership.clone(),
            keep_mtime: opts.keep_mtime,
            epoch: opts.epoch,
            xattrs: opts.xattrs,
        };
        let tree = Tree::open(&opts.dir, rules)?;
        Ok(Packer {
            opts,
            links: HashMap::new(),
            symlinks: HashSet::new(),
            buf: vec![0; CHUNK],
            spare: vec![0; CHUNK],
            line: 0,
            name: Vec::new(),
            settle_failed: false,
            hasher: None,
            owed: 0,
            owed_pad: 0,
            tree,
            xattrs: XattrSet::default(),
            order: OrderCheck::new(),
        })
    }

    fn pack<R: BufRead, W: Write + ?Sized>(&mut self, input: R, out: &mut W) -> Result<()> {
        let mut records = RecordReader::new(input, Terminator::nul_if(self.opts.nul));
        loop {
            let record = match records.next_record().context("reading stdin")? {
                Some(r) => r.to_vec(),
                None => return self.settle(out),
            };
            let line = records.line();
            let input = Input::parse(&record);
            let context = || format!("stdin line {line}: {}", quote(input.name()));
            // A bad name is refused as such before its order is judged;
            // an earlier file's digest check comes first.
            if let Err(e) = check_name(input.name()) {
                self.settle(out)?;
                return Err(anyhow::Error::new(e).context(context()));
            }
            if let Err(e) = self.order.check("stdin", line, input.name()) {
                self.settle(out)?;
                return Err(e.into());
            }
            self.line = line;
            self.name.clear();
            self.name.extend_from_slice(input.name());
            match self.entry(&input, out) {
                Ok(()) => {}
                // The error of an earlier file's digest, already named.
                Err(e) if self.settle_failed => return Err(e),
                Err(e) => {
                    // An earlier file's digest check comes first.
                    self.settle(out)?;
                    return Err(e.context(context()));
                }
            }
        }
    }

    fn entry<W: Write + ?Sized>(&mut self, input: &Input, out: &mut W) -> Result<()> {
        // The one resolver: the name checked, looked up beneath DIR
        // through no symlink, the list/fakeroot/owner rules applied.
        let mut found = self.tree.resolve_input(input)?;
        self.xattrs = std::mem::take(&mut found.xattrs);
        if found.whiteout {
            return self.whiteout(&found.path, found.mode, out);
        }
        if found.path.is_empty() {
            // The root directory is not written: `docker save` and
            // BuildKit layers have no entry for it, and an entry `./`
            // would have engines chmod/chown the container's root.
            return Ok(());
        }
        let member = found.path.clone();
        self.check_parents(&member)?;

        // For messages only: every access goes through the tree.
        let path = self.opts.dir.join(OsStr::from_bytes(input.name()));
        let mut m = Member {
            name: &member,
            kind: Kind::Regular,
            mode: found.mode & 0o7777,
            uid: found.uid,
            gid: found.gid,
            size: 0,
            mtime: found.mtime,
            link: b"",
            major: 0,
            minor: 0,
        };
        match found.file_type {
            FileType::Regular => {
                if found.disk.nlink > 1 {
                    let key = (found.disk.dev, found.disk.ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        m.kind = Kind::HardLink;
                        m.link = &first;
                        // The inode's attributes went with its first
                        // name; a link member repeats none (GNU tar
                        // neither), so unpacking sets them once.
                        self.xattrs = XattrSet::default();
                        return self.header(out, &m);
                    }
                    self.links.insert(key, member.clone());
                }
                self.regular(&path, &found, m, found.expect, out)
            }
            FileType::Symlink => {
                let target = found.target.as_deref().unwrap_or_default();
                if let Some(want) = found.expect {
                    let got: [u8; 32] = Sha256::digest(target).into();
                    if got != want {
                        bail!(
                            "symlink {} now points to {}, not what was listed (its SHA-256 differs)",
                            path.display(),
                            quote(target)
                        );
                    }
                }
                m.kind = Kind::Symlink;
                m.link = target;
                self.header(out, &m)?;
                self.symlinks.insert(member.clone());
                Ok(())
            }
            FileType::Directory => {
                // Directory members end in `/`, as `docker save` and GNU
                // tar write them.
                let mut dir = member.clone();
                dir.push(b'/');
                m.name = &dir;
                m.kind = Kind::Directory;
                self.header(out, &m)
            }
            kind @ (FileType::CharDevice | FileType::BlockDevice) => {
                m.kind = if kind == FileType::CharDevice {
                    Kind::CharDevice
                } else {
                    Kind::BlockDevice
                };
                (m.major, m.minor) = found.rdev;
                self.header(out, &m)
            }
            FileType::Fifo => {
                m.kind = Kind::Fifo;
                self.header(out, &m)
            }
            FileType::Socket => {
                // tar has no socket type; GNU tar skips them too ("socket
                // ignored"). A socket belongs to a running program.
                filtertool::warn(
                    crate::TOOL,
                    format_args!("{}: socket ignored", quote(input.name())),
                );
                Ok(())
            }
        }
    }

    /// Refuses an entry below a symlink written earlier in this layer: an
    /// engine unpacking `a -> /etc` and then `a/passwd` may write through
    /// the link (the classic symlink-then-file tar attack).
    fn check_parents(&self, member: &[u8]) -> Result<()> {
        if self.symlinks.is_empty() {
            return Ok(());
        }
        for (i, &b) in member.iter().enumerate() {
            if b == b'/' && self.symlinks.contains(&member[..i]) {
                bail!(
                    "refused: its parent {} is a symlink earlier in this layer, \
                     so unpacking it could write through the link",
                    quote(&member[..i])
                );
            }
        }
        Ok(())
    }

    /// A whiteout line (`DIR/.wh.NAME 0100000-0-0-whiteout`): an empty
    /// regular file, how the OCI image spec (layer.md, "Whiteouts") and
    /// Docker mark a deletion. Its mode is the list's (no permission
    /// bits): engines never create the file, they delete what it names,
    /// so its mode does not matter to them.
    fn whiteout<W: Write + ?Sized>(&mut self, member: &[u8], mode: u32, out: &mut W) -> Result<()> {
        let base = match member.iter().rposition(|&b| b == b'/') {
            Some(i) => &member[i + 1..],
            None => member,
        };
        if !base.starts_with(b".wh.") || base.len() == 4 {
            bail!("a whiteout line must name DIR/.wh.NAME");
        }
        let m = Member {
            name: member,
            kind: Kind::Regular,
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: self.opts.epoch,
            link: b"",
            major: 0,
            minor: 0,
        };
        self.header(out, &m)
    }

    /// Writes a header: through the hashing thread's queue once that
    /// runs (so members stay in list order), else directly.
    fn header<W: Write + ?Sized>(&mut self, out: &mut W, m: &Member<'_>) -> Result<()> {
        if self.hasher.is_none() {
            return tarfmt::write_header_xattrs(out, m, &self.xattrs).context("writing stdout");
        }
        let mut bytes = Vec::with_capacity(tarfmt::BLOCK);
        tarfmt::write_header_xattrs(&mut bytes, m, &self.xattrs).context("writing stdout")?;
        let size = if m.kind == Kind::Regular { m.size } else { 0 };
        self.send(out, Item::Header(bytes, size))
    }

    /// Writes everything the hashing thread still has, in order, checking
    /// each file's digest before its held-back last chunk.
    fn settle<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<()> {
        if self.hasher.is_none() {
            return Ok(());
        }
        while self.write_next(out, true)? {}
        Ok(())
    }

    /// Hands an item to the hashing thread (in batches: one channel
    /// message and wake-up per [`BATCH_BYTES`] or [`BATCH_ITEMS`], not per
    /// header or small file), then writes what it has finished; waits for
    /// it first while too much is in flight.
    fn send<W: Write + ?Sized>(&mut self, out: &mut W, item: Item) -> Result<()> {
        while self.hasher_mut()?.queued() >= IN_FLIGHT {
            self.write_next(out, true)?;
        }
        self.hasher_mut()?.push(item)?;
        while self.write_next(out, false)? {}
        Ok(())
    }

    /// Writes the next item back from the hashing thread (waiting for it,
    /// and sending the batch being filled, if `wait`); false if there is
    /// none.
    fn write_next<W: Write + ?Sized>(&mut self, out: &mut W, wait: bool) -> Result<bool> {
        let Some((item, digest)) = self.hasher_mut()?.next(wait)? else {
            return Ok(false);
        };
        let result = self.write_item(out, item, digest);
        if result.is_err() {
            self.settle_failed = true;
        }
        result.map(|()| true)
    }

    /// Writes one item. The last chunk of a file is written only if the
    /// file's digest matches: a mismatch leaves the member short, so
    /// `write_layer` pads it with zeros and a poison block, never a
    /// complete-looking layer.
    fn write_item<W: Write + ?Sized>(
        &mut self,
        out: &mut W,
        item: Item,
        digest: Option<[u8; 32]>,
    ) -> Result<()> {
        match item {
            Item::Header(bytes, size) => {
                out.write_all(&bytes).context("writing stdout")?;
                self.owed = size;
                self.owed_pad = tarfmt::padding(size) as u64;
            }
            Item::Data(buf, n) => {
                let written = out.write_all(&buf[..n]).context("writing stdout");
                self.give_back(buf);
                written?;
                self.owed = self.owed.saturating_sub(n as u64);
            }
            Item::Last(buf, n, check) => {
                let got = digest.ok_or_else(HashThread::stopped)?;
                if got != check.want {
                    self.give_back(buf);
                    return Err(anyhow!(
                        "{} changed since it was listed: its SHA-256 is {}, the list says {}",
                        check.path.display(),
                        filelist::hex::encode(&got),
                        filelist::hex::encode(&check.want)
                    )
                    .context(check.context));
                }
                let written = out.write_all(&buf[..n]).context("writing stdout");
                self.give_back(buf);
                written?;
                self.owed = 0;
                let pad = self.owed_pad as usize;
                out.write_all(&[0u8; tarfmt::BLOCK][..pad])
                    .context("writing stdout")?;
                self.owed_pad = 0;
            }
        }
        Ok(())
    }

    /// Opens a regular file of the tree through the resolver, which
    /// checks it is the one that was examined, and returns it with its
    /// size now.
    /// Its error says what failed; the caller names the entry.
    fn open_regular(&mut self, found: &Found) -> Result<(File, u64)> {
        let (file, now) = self.tree.open_content(found)?;
        Ok((file, now.size))
    }

    /// Streams a regular file's content, checking its size and (for a
    /// list line) its SHA-256. The last chunk is written only after the
    /// digest matched.
    fn regular<W: Write + ?Sized>(
        &mut self,
        path: &Path,
        found: &Found,
        m: Member<'_>,
        want: Option<[u8; 32]>,
        out: &mut W,
    ) -> Result<()> {
        match want {
            Some(want) => self.regular_hashed(path, found, m, want, out),
            None => {
                // A plain name after list lines: written directly, once
                // the queue is empty.
                self.settle(out)?;
                self.regular_inline(path, found, m, want, out)
            }
        }
    }

    /// Reads, hashes (for a list line) and writes on this thread.
    fn regular_inline<W: Write + ?Sized>(
        &mut self,
        path: &Path,
        found: &Found,
        mut m: Member<'_>,
        want: Option<[u8; 32]>,
        out: &mut W,
    ) -> Result<()> {
        let (mut file, size) = self.open_regular(found)?;
        m.size = size;
        tarfmt::write_header_xattrs(out, &m, &self.xattrs).context("writing stdout")?;
        self.owed = size;
        self.owed_pad = tarfmt::padding(size) as u64;
        let mut hasher = want.map(|_| Sha256::new());
        let mut total: u64 = 0;
        let mut held = 0usize;
        loop {
            let n = read_chunk(&mut file, &mut self.buf, path)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > size {
                bail!("{} grew while being read", path.display());
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&self.buf[..n]);
            }
            out.write_all(&self.spare[..held])
                .context("writing stdout")?;
            self.owed -= held as u64;
            std::mem::swap(&mut self.buf, &mut self.spare);
            held = n;
        }
        if total != size {
            bail!("{} shrank while being read", path.display());
        }
        if let (Some(h), Some(want)) = (hasher, want) {
            let got: [u8; 32] = h.finalize().into();
            if got != want {
                bail!(
                    "{} changed since it was listed: its SHA-256 is {}, the list says {}",
                    path.display(),
                    filelist::hex::encode(&got),
                    filelist::hex::encode(&want)
                );
            }
        }
        out.write_all(&self.spare[..held])
            .context("writing stdout")?;
        self.owed = 0;
        self.owed_pad = 0;
        out.write_all(&[0u8; tarfmt::BLOCK][..tarfmt::padding(size)])
            .context("writing stdout")?;
        Ok(())
    }

    /// A list line: the content is hashed on a second thread
    /// ([`HashThread`]) while this one reads and writes, so on a machine
    /// with two cores hashing overlaps reading and writing. Everything
    /// written goes through that thread's queue, in order; the last chunk
    /// of each file comes back with the file's digest and is written only
    /// if it matches ([`Packer::write_item`]). Meanwhile this thread reads
    /// ahead, at most [`BUFFERS`] chunks and [`IN_FLIGHT`] items.
    fn regular_hashed<W: Write + ?Sized>(
        &mut self,
        path: &Path,
        found: &Found,
        mut m: Member<'_>,
        want: [u8; 32],
        out: &mut W,
    ) -> Result<()> {
        let (mut file, size) = self.open_regular(found)?;
        m.size = size;
        if self.hasher.is_none() {
            self.hasher = Some(HashThread::start()?);
        }
        self.header(out, &m)?;
        let mut held = self.take_buffer(out)?;
        let mut held_n = match read_chunk(&mut file, &mut held, path) {
            Ok(n) => n,
            Err(e) => {
                self.give_back(held);
                return Err(e);
            }
        };
        let mut total = held_n as u64;
        if total > size {
            self.give_back(held);
            bail!("{} grew while being read", path.display());
        }
        while held_n > 0 {
            let mut buf = self.take_buffer(out)?;
            let n = match read_chunk(&mut file, &mut buf, path) {
                Ok(n) => n,
                Err(e) => {
                    self.give_back(held);
                    self.give_back(buf);
                    return Err(e);
                }
            };
            if n == 0 {
                self.give_back(buf);
                break;
            }
            total += n as u64;
            if total > size {
                self.give_back(held);
                self.give_back(buf);
                bail!("{} grew while being read", path.display());
            }
            self.send(out, Item::Data(held, held_n))?;
            held = buf;
            held_n = n;
        }
        if total != size {
            self.give_back(held);
            bail!("{} shrank while being read", path.display());
        }
        let check = Check {
            want,
            path: path.to_path_buf(),
            context: format!("stdin line {}: {}", self.line, quote(&self.name)),
        };
        self.send(out, Item::Last(held, held_n, Box::new(check)))
    }

    fn hasher_mut(&mut self) -> Result<&mut HashThread> {
        self.hasher
            .as_mut()
            .ok_or_else(|| anyhow!("internal error: no hashing thread"))
    }

    /// A free chunk buffer: a recycled one, a new one while fewer than
    /// [`BUFFERS`] exist, else the next one written out.
    fn take_buffer<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<Vec<u8>> {
        loop {
            let h = self.hasher_mut()?;
            if let Some(b) = h.free.pop() {
                return Ok(b);
            }
            if h.allocated < BUFFERS {
                h.allocated += 1;
                return Ok(vec![0; CHUNK]);
            }
            if !self.write_next(out, true)? {
                bail!("internal error: every chunk buffer is lost");
            }
        }
    }

    fn give_back(&mut self, buf: Vec<u8>) {
        if let Some(h) = self.hasher.as_mut() {
            h.free.push(buf);
        }
    }
}

/// Reads one chunk, retrying on `EINTR`.
fn read_chunk(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize> {
    loop {
        match file.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// What the last chunk of a file is checked against.
struct Check {
    want: [u8; 32],
    path: PathBuf,
    /// `stdin line N: NAME`, for the error.
    context: String,
}

/// At most this many chunk buffers exist at once (bounded memory: 8 MiB).
const BUFFERS: usize = 32;
/// At most this many items are queued to the hashing thread.
const IN_FLIGHT: usize = 256;
/// A batch is sent to the hashing thread once it holds this many bytes
/// of data or this many items.
const BATCH_BYTES: usize = CHUNK;
const BATCH_ITEMS: usize = 16;

type Done = (Item, Option<[u8; 32]>);

/// What goes to the hashing thread and comes back, in output order.
enum Item {
    /// Header blocks, not hashed, of a member with this many data bytes.
    Header(Vec<u8>, u64),
    /// File data: hashed.
    Data(Vec<u8>, usize),
    /// A file's last data: hashed, and the digest comes back with it.
    Last(Vec<u8>, usize, Box<Check>),
}

/// The thread that computes SHA-256 of file contents for
/// [`Packer::regular_hashed`]: a bounded channel of batches of items in,
/// each item sent back in the same order once hashed (with the digest
/// after a file's last chunk), so this thread writes them out in order.
struct HashThread {
    jobs: Option<mpsc::SyncSender<Vec<Item>>>,
    results: mpsc::Receiver<Vec<Done>>,
    /// The batch being filled, and its data bytes.
    batch: Vec<Item>,
    batch_bytes: usize,
    /// Items sent and not yet back.
    in_flight: usize,
    /// Items back and not yet written.
    ready: std::collections::VecDeque<Done>,
    /// Buffers written out and not in use.
    free: Vec<Vec<u8>>,
    allocated: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HashThread {
    fn start() -> Result<HashThread> {
        let (jobs, jobs_rx) = mpsc::sync_channel::<Vec<Item>>(IN_FLIGHT / BATCH_ITEMS + BUFFERS);
        let (results_tx, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for batch in jobs_rx {
                    let mut done = Vec::with_capacity(batch.len());
                    for item in batch {
                        let digest = match &item {
                            Item::Header(..) => None,
                            Item::Data(buf, n) => {
                                hasher.update(&buf[..*n]);
                                None
                            }
                            Item::Last(buf, n, _) => {
                                hasher.update(&buf[..*n]);
                                Some(std::mem::take(&mut hasher).finalize().into())
                            }
                        };
                        done.push((item, digest));
                    }
                    if results_tx.send(done).is_err() {
                        return;
                    }
                }
            })
            .context("cannot start the hashing thread")?;
        Ok(HashThread {
            jobs: Some(jobs),
            results,
            batch: Vec::new(),
            batch_bytes: 0,
            in_flight: 0,
            ready: std::collections::VecDeque::new(),
            free: Vec::new(),
            allocated: 0,
            thread: Some(thread),
        })
    }

    fn stopped() -> anyhow::Error {
        anyhow!("the hashing thread stopped")
    }

    /// Items not yet written, wherever they are.
    fn queued(&self) -> usize {
        self.batch.len() + self.in_flight + self.ready.len()
    }

    fn push(&mut self, item: Item) -> Result<()> {
        self.batch_bytes += match &item {
            Item::Header(..) => 0,
            Item::Data(_, n) | Item::Last(_, n, _) => *n,
        };
        self.batch.push(item);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_ITEMS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len();
        self.batch_bytes = 0;
        self.jobs
            .as_ref()
            .ok_or_else(Self::stopped)?
            .send(batch)
            .map_err(|_| Self::stopped())?;
        self.in_flight += n;
        Ok(())
    }

    /// The next item back, in order: waiting for it (after sending the
    /// batch being filled) if `wait`. `None` when there is none (to wait
    /// for).
    fn next(&mut self, wait: bool) -> Result<Option<Done>> {
        if self.ready.is_empty() {
            if wait {
                self.flush()?;
            }
            if self.in_flight == 0 {
                return Ok(None);
            }
            let done = if wait {
                self.results.recv().map_err(|_| Self::stopped())?
            } else {
                match self.results.try_recv() {
                    Ok(d) => d,
                    Err(mpsc::TryRecvError::Empty) => return Ok(None),
                    Err(mpsc::TryRecvError::Disconnected) => return Err(Self::stopped()),
                }
            };
            self.in_flight -= done.len();
            self.ready.extend(done);
        }
        Ok(self.ready.pop_front())
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
