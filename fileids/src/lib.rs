//! `fileids`: turn a stream of file names into list lines
//! (`NAME MODE-UID-GID-DIGEST`, see the `filelist` crate), the cookbook's
//! `fileids.py` made parallel, streaming and exact about odd files.
//!
//! Names are read one record at a time and handed to a pool of hashing
//! threads; results are written strictly in input order. At most a fixed
//! window of names is in flight, so memory does not grow with the input,
//! and each thread hashes through one reused buffer, so it does not grow
//! with file size either.

use std::collections::BinaryHeap;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use filelist::entry::{quote, write_line, Digest, Fields, FileType};
use filelist::owner::{major, minor, Ownership, Stat};
use filelist::records::{check_name, RecordReader, Terminator};
use sha2::{Digest as _, Sha256};

/// List files as `NAME MODE-UID-GID-DIGEST` lines, one per name read on
/// stdin, in input order.
///
/// DIGEST is the SHA-256 of a regular file's content or of a symlink's
/// target, MAJOR:MINOR for a device, 0 otherwise. Typical use:
/// `find . | LC_ALL=C sort | fileids > NAME.list`
#[derive(Parser, Debug)]
#[command(name = "fileids", version)]
pub struct Cli {
    /// Resolve names relative to DIR instead of the current directory.
    #[arg(short = 'C', value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Names on stdin are NUL-terminated (find -print0).
    #[arg(short = '0', long = "null")]
    pub null_in: bool,
    /// Write NUL-terminated records instead of lines.
    #[arg(short = 'z', long = "zero-terminated")]
    pub null_out: bool,
    /// Record every file as owned by UID:GID (e.g. 0:0).
    #[arg(long, value_name = "UID:GID")]
    pub owner: Option<String>,
    /// Take ownership, modes and device numbers from a `fakeroot -s` state file.
    #[arg(long, value_name = "STATE")]
    pub fakeroot: Option<PathBuf>,
    /// Hash with N threads (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

/// What `fileids` needs to know besides its input.
pub struct Options {
    pub dir: PathBuf,
    pub input: Terminator,
    pub output: Terminator,
    pub ownership: Ownership,
    pub jobs: usize,
}

/// The tool's body: stdin to stdout.
pub fn run(cli: Cli) -> Result<u8> {
    let ownership = Ownership::from_options(cli.owner.as_deref(), cli.fakeroot.as_deref())
        .map_err(|e| anyhow!(e))?;
    let jobs = match cli.jobs {
        Some(n) => usize::from(n),
        None => thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let opts = Options {
        dir: cli.dir,
        input: Terminator::nul_if(cli.null_in),
        output: Terminator::nul_if(cli.null_out),
        ownership,
        jobs,
    };
    let stdin = io::stdin().lock();
    let mut out = filtertool::stdout();
    list(stdin, &mut out, &opts)?;
    out.flush().context("writing stdout")?;
    Ok(0)
}

/// Size of the per-thread read buffer: large enough that syscalls are a
/// small share of the time at SHA-NI speed (about 1.4 GB/s, ENVIRONMENT.md).
const READ_BUF: usize = 256 * 1024;

/// Reads names from `input` and writes one list line per name to `out`.
pub fn list<R: BufRead, W: Write>(input: R, out: &mut W, opts: &Options) -> Result<()> {
    let mut records = RecordReader::new(input, opts.input);
    if opts.jobs <= 1 {
        let mut buf = vec![0u8; READ_BUF];
        while let Some(name) = next_name(&mut records, opts)? {
            let fields = identify(&resolve(&opts.dir, &name), &name, &opts.ownership, &mut buf)?;
            emit(out, &name, &fields, opts.output)?;
        }
        return Ok(());
    }
    parallel(&mut records, out, opts)
}

fn next_name<R: BufRead>(records: &mut RecordReader<R>, opts: &Options) -> Result<Option<Vec<u8>>> {
    let Some(name) = records.next_record().context("reading names from stdin")? else {
        return Ok(None);
    };
    if name.is_empty() {
        bail!("stdin: line {}: empty name", records.line());
    }
    if let Err(why) = check_name(name, opts.output) {
        bail!("{}: {}", quote(name), why);
    }
    Ok(Some(name.to_vec()))
}

fn emit<W: Write>(out: &mut W, name: &[u8], fields: &Fields, term: Terminator) -> Result<()> {
    write_line(out, name, fields, term).context("writing stdout")
}

fn resolve(dir: &Path, name: &[u8]) -> PathBuf {
    let name = Path::new(OsStr::from_bytes(name));
    if dir == Path::new(".") {
        name.to_path_buf()
    } else {
        dir.join(name)
    }
}

type Reply = Result<Fields>;

/// One name to identify. The feeding thread has already `lstat`ed it, so
/// that the pool can start the largest files first.
struct Job {
    size: u64,
    seq: u64,
    path: PathBuf,
    name: Vec<u8>,
    meta: io::Result<fs::Metadata>,
    reply: SyncSender<Reply>,
}

// Largest first; among equal sizes, oldest first.
impl Ord for Job {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.size
            .cmp(&other.size)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}
impl Eq for Job {}

/// The jobs waiting for a thread, and whether more will come.
struct Queue {
    state: Mutex<(BinaryHeap<Job>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, (BinaryHeap<Job>, bool)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, job: Job) {
        self.lock().0.push(job);
        self.ready.notify_one();
    }

    /// Stops the workers once the queue is empty (`discard`: at once).
    fn close(&self, discard: bool) {
        let mut state = self.lock();
        state.1 = true;
        if discard {
            state.0.clear();
        }
        drop(state);
        self.ready.notify_all();
    }

    fn pop(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.0.pop() {
                return Some(job);
            }
            if state.1 {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Hashes on `opts.jobs` threads, writing results in input order.
///
/// Up to [`WINDOW`] names are in flight, and the threads take the largest
/// waiting file first. Hashing one file cannot be split across cores, so a
/// big file met late leaves one core hashing it alone at the end: in a
/// Debian minbase tree one 50 MB apt index is a quarter of all bytes.
/// Starting it as soon as it enters the window hides that tail behind the
/// small files around it.
fn parallel<R: BufRead, W: Write>(
    records: &mut RecordReader<R>,
    out: &mut W,
    opts: &Options,
) -> Result<()> {
    let queue = Queue {
        state: Mutex::new((BinaryHeap::new(), false)),
        ready: Condvar::new(),
    };
    thread::scope(|scope| {
        for _ in 0..opts.jobs {
            let queue = &queue;
            let ownership = &opts.ownership;
            scope.spawn(move || worker(queue, ownership));
        }
        let result = feed(records, out, opts, &queue);
        queue.close(result.is_err());
        result
    })
}

/// Names in flight at most: a few hundred kilobytes of names and
/// metadata, however long the input.
const WINDOW: usize = 1024;

fn worker(queue: &Queue, ownership: &Ownership) {
    let mut buf = vec![0u8; READ_BUF];
    while let Some(job) = queue.pop() {
        let result = job
            .meta
            .with_context(|| format!("{}: cannot stat", quote(&job.name)))
            .and_then(|meta| identify_with(&job.path, &job.name, &meta, ownership, &mut buf));
        // The writer may have stopped on an earlier error; nothing to do then.
        let _ = job.reply.send(result);
    }
}

fn feed<R: BufRead, W: Write>(
    records: &mut RecordReader<R>,
    out: &mut W,
    opts: &Options,
    queue: &Queue,
) -> Result<()> {
    let mut pending: VecDeque<(Vec<u8>, Receiver<Reply>)> = VecDeque::with_capacity(WINDOW + 1);
    let mut seq = 0;
    while let Some(name) = next_name(records, opts)? {
        let (reply, result) = sync_channel(1);
        let path = resolve(&opts.dir, &name);
        let meta = fs::symlink_metadata(&path);
        let size = match &meta {
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        seq += 1;
        queue.push(Job {
            size,
            seq,
            path,
            name: name.clone(),
            meta,
            reply,
        });
        pending.push_back((name, result));
        if pending.len() >= WINDOW {
            write_oldest(&mut pending, out, opts.output)?;
        }
    }
    queue.close(false);
    while !pending.is_empty() {
        write_oldest(&mut pending, out, opts.output)?;
    }
    Ok(())
}

fn write_oldest<W: Write>(
    pending: &mut VecDeque<(Vec<u8>, Receiver<Reply>)>,
    out: &mut W,
    term: Terminator,
) -> Result<()> {
    let Some((name, result)) = pending.pop_front() else {
        return Ok(());
    };
    let fields = result
        .recv()
        .map_err(|_| anyhow!("{}: hashing thread stopped unexpectedly", quote(&name)))??;
    emit(out, &name, &fields, term)
}

/// The list fields of one file: `lstat` (symlinks are not followed), the
/// ownership rule, then the digest that fits the (possibly faked) type.
pub fn identify(path: &Path, name: &[u8], ownership: &Ownership, buf: &mut [u8]) -> Result<Fields> {
    let meta =
        fs::symlink_metadata(path).with_context(|| format!("{}: cannot stat", quote(name)))?;
    identify_with(path, name, &meta, ownership, buf)
}

/// [`identify`] for a file already `lstat`ed.
fn identify_with(
    path: &Path,
    name: &[u8],
    meta: &fs::Metadata,
    ownership: &Ownership,
    buf: &mut [u8],
) -> Result<Fields> {
    let real = Stat::from_metadata(meta);
    let st = ownership.apply(&real);
    let kind = FileType::from_mode(st.mode)
        .ok_or_else(|| anyhow!("{}: unknown file type in mode {:o}", quote(name), st.mode))?;
    let real_kind = FileType::from_mode(real.mode);
    let digest = match kind {
        FileType::Regular => {
            if real_kind != Some(FileType::Regular) {
                bail!(
                    "{}: the fakeroot state says regular file, but it is not one",
                    quote(name)
                );
            }
            Digest::Sha256(hash_file(path, name, meta, buf)?)
        }
        FileType::Symlink => {
            if real_kind != Some(FileType::Symlink) {
                bail!(
                    "{}: the fakeroot state says symlink, but it is not one",
                    quote(name)
                );
            }
            let target = fs::read_link(path)
                .with_context(|| format!("{}: cannot read link", quote(name)))?;
            Digest::Sha256(Sha256::digest(target.as_os_str().as_bytes()).into())
        }
        FileType::CharDevice | FileType::BlockDevice => Digest::Device {
            major: major(st.rdev),
            minor: minor(st.rdev),
        },
        FileType::Directory | FileType::Fifo | FileType::Socket => Digest::Zero,
    };
    Ok(Fields {
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        digest,
    })
}

/// SHA-256 of a regular file's content, refusing a file that is replaced
/// or changes size or ctime while it is read: its line would describe
/// content that no longer exists, and a layer built from it later would
/// silently differ.
fn hash_file(path: &Path, name: &[u8], before: &fs::Metadata, buf: &mut [u8]) -> Result<[u8; 32]> {
    // O_NONBLOCK: should the name have become a FIFO since lstat, open must
    // not hang; O_NOFOLLOW: nor follow a symlink that replaced the file.
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("{}: cannot open", quote(name)))?;
    let opened = file
        .metadata()
        .with_context(|| format!("{}: cannot stat", quote(name)))?;
    if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) || !opened.is_file() {
        bail!("{}: file was replaced while being listed", quote(name));
    }
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", quote(name))),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let after = file
        .metadata()
        .with_context(|| format!("{}: cannot stat", quote(name)))?;
    if total != opened.size()
        || after.size() != opened.size()
        || (after.ctime(), after.ctime_nsec()) != (opened.ctime(), opened.ctime_nsec())
    {
        bail!(
            "{}: file changed while being hashed (size {} when opened, {} read, {} now)",
            quote(name),
            opened.size(),
            total,
            after.size()
        );
    }
    Ok(hasher.finalize().into())
}
