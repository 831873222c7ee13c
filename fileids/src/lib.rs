//! `fileids`: turn a stream of file names into list lines
//! (`NAME MODE-UID-GID-DIGEST`, see the `filelist` crate), the cookbook's
//! `fileids.py` made parallel, streaming and exact about odd files.
//!
//! Names are read one record at a time and handed to a pool of hashing
//! threads; results are written strictly in input order. At most a fixed
//! window of names is in flight, so memory does not grow with the input,
//! and each thread hashes up to four files at once through one reused
//! buffer per file (`hashing`, `sha256x`), so it does not grow with file
//! size either.

use std::collections::BinaryHeap;
use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use filelist::entry::{quote, write_line, Fields};
use filelist::owner::Ownership;
use filelist::records::{check_name, RecordReader, Terminator};
use filelist::tree::{Member, Opener, ResolveError, Rules, Tree};
use filelist::xattr::Policy;

mod hashing;
pub mod sha256x;

use hashing::{Lanes, Stream};

/// List files as `NAME MODE-UID-GID-DIGEST` lines, one per name read on
/// stdin, in input order.
///
/// DIGEST is the SHA-256 of a regular file's content or of a symlink's
/// target, MAJOR:MINOR for a device, 0 otherwise, followed by
/// `+SHA-256` of the file's extended attributes where it has any
/// (security.capability, user.*, trusted.*; see --xattrs). Typical use:
/// `find . | LC_ALL=C sort | fileids > NAME.list`
#[derive(Parser, Debug)]
#[command(name = "fileids", version)]
pub struct Cli {
    #[command(flatten)]
    pub tree: filtertool::args::TreeArgs,
    /// Write NUL-terminated records instead of lines.
    #[arg(short = 'z', long = "zero-terminated")]
    pub null_out: bool,
    /// Hash with N threads (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    #[command(flatten)]
    pub xattrs: filtertool::args::XattrArgs,
}

/// What `fileids` needs to know besides its input.
pub struct Options {
    pub dir: PathBuf,
    pub input: Terminator,
    pub output: Terminator,
    pub ownership: Ownership,
    pub jobs: usize,
    /// Which extended attributes each line's `+XATTRS` part covers.
    pub xattrs: Policy,
}

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::filter("fileids");

/// The tool's body: stdin to stdout.
pub fn run(cli: Cli) -> Result<u8> {
    let tree = cli.tree;
    tree.stdin_only.check("names")?;
    let ownership = Ownership::from_args(tree.owner, tree.fakeroot.as_deref())?;
    let jobs = match cli.jobs {
        Some(n) => usize::from(n),
        None => thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let opts = Options {
        dir: tree.dir,
        input: Terminator::nul_if(tree.null),
        output: Terminator::nul_if(cli.null_out),
        ownership,
        jobs,
        xattrs: Policy::from_args(&cli.xattrs),
    };
    let stdin = io::stdin().lock();
    let mut out = filtertool::stdout();
    list(stdin, &mut out, &opts)?;
    out.flush().context("writing stdout")?;
    Ok(0)
}

/// Reads names from `input` and writes one list line per name to `out`.
///
/// Every name goes through the one resolver of `filelist::tree`: looked
/// up beneath DIR (opened here, before any input is read, so a bad `-C`
/// fails even on empty input) through no symlink, and refused if it is
/// absolute, has `..` or ends in `/`. On `find . | LC_ALL=C sort` input
/// that gives exactly what the seed's `fileids.py` prints.
pub fn list<R: BufRead, W: Write>(input: R, out: &mut W, opts: &Options) -> Result<()> {
    let rules = Rules {
        ownership: opts.ownership.clone(),
        xattrs: opts.xattrs,
        ..Rules::default()
    };
    let mut tree = Tree::open(&opts.dir, rules)?;
    let mut records = RecordReader::new(input, opts.input);
    parallel(&mut records, out, opts, &mut tree)
}

/// The next name and its line number.
fn next_name<R: BufRead>(
    records: &mut RecordReader<R>,
    opts: &Options,
) -> Result<Option<(Vec<u8>, u64)>> {
    let line = records.line() + 1;
    let Some(name) = records.next_record().context("reading names from stdin")? else {
        return Ok(None);
    };
    if let Err(why) = check_name(name, opts.output) {
        return Err(at(line, name, why));
    }
    Ok(Some((name.to_vec(), line)))
}

/// `stdin line N: "NAME": why`, the form of every per-name error.
fn at(line: u64, name: &[u8], why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("stdin line {line}: {}: {why}", quote(name))
}

fn emit<W: Write>(out: &mut W, name: &[u8], fields: &Fields, term: Terminator) -> Result<()> {
    write_line(out, name, fields, term).context("writing stdout")
}

type Reply = Result<Fields>;

/// One name to identify. The feeding thread has already resolved it (one
/// `fstatat` below its cached parent), so that the pool can start the
/// largest files first.
struct Job {
    size: u64,
    seq: u64,
    line: u64,
    name: Vec<u8>,
    found: Result<Member, ResolveError>,
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

/// The hashing threads' shared state: the jobs not started yet, and the
/// results of every name in the window, oldest first.
///
/// One mutex and two condition variables rather than a channel per name:
/// a waiting `recv` spins before it sleeps, and `Condvar::notify_one` is a
/// futex syscall even when no one waits, so both are done only when a
/// thread is known to sleep. On the minbase tree this took the futex calls
/// from 7,100 to a few hundred and the spinning off the cores the hashing
/// needs (the target `scripts/bench/fileids.sh` checks: within 1.3x of
/// the machine's limit).
struct Pool {
    state: Mutex<PoolState>,
    /// Workers wait here for a job.
    work: Condvar,
    /// The writer waits here for the oldest result.
    done: Condvar,
    /// Bytes of regular files listed and not yet hashed to the end, and
    /// whether every name has been read: see [`Pool::wants_more`].
    unhashed: AtomicU64,
    input_done: AtomicBool,
    workers: u64,
    /// The writer failed (an error in the list, stdout closed): threads
    /// drop the files in hand instead of hashing them to the end.
    abandoned: AtomicBool,
}

struct PoolState {
    /// Started largest first.
    jobs: BinaryHeap<Job>,
    /// `results[i]` belongs to name number `first + i`; `None` until done.
    results: VecDeque<Option<Reply>>,
    first: u64,
    /// No more jobs will come.
    closed: bool,
    idle_workers: usize,
    writer_waiting: bool,
}

impl Pool {
    fn new(workers: usize) -> Pool {
        Pool {
            unhashed: AtomicU64::new(0),
            input_done: AtomicBool::new(false),
            workers: workers as u64,
            abandoned: AtomicBool::new(false),
            state: Mutex::new(PoolState {
                jobs: BinaryHeap::new(),
                results: VecDeque::with_capacity(WINDOW + 1),
                first: 0,
                closed: false,
                idle_workers: 0,
                writer_waiting: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, job: Job) {
        self.unhashed.fetch_add(job.size, Ordering::Relaxed);
        let mut state = self.lock();
        state.jobs.push(job);
        state.results.push_back(None);
        let wake = state.idle_workers > 0;
        drop(state);
        if wake {
            self.work.notify_one();
        }
    }

    /// No more jobs; with `discard` (the writer failed) drop those not
    /// started and those in hand, so the workers stop at once.
    fn close(&self, discard: bool) {
        self.input_done.store(true, Ordering::Relaxed);
        if discard {
            self.abandoned.store(true, Ordering::Relaxed);
        }
        let mut state = self.lock();
        state.closed = true;
        if discard {
            state.jobs.clear();
        }
        drop(state);
        self.work.notify_all();
    }

    /// Records the result of the job `seq`, whose `size` bytes (its
    /// `lstat` size, 0 unless a regular file) are no longer to be hashed.
    fn finish(&self, seq: u64, size: u64, reply: Reply) {
        self.unhashed.fetch_sub(size, Ordering::Relaxed);
        let mut state = self.lock();
        let oldest = seq == state.first;
        if let Some(slot) = seq
            .checked_sub(state.first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| state.results.get_mut(i))
        {
            *slot = Some(reply);
        }
        let wake = oldest && state.writer_waiting;
        drop(state);
        if wake {
            self.done.notify_one();
        }
    }

    /// Whether a thread holding `lanes` should take another file.
    ///
    /// Once every name is read, the rest of the run is as long as the
    /// longer of two things: all remaining bytes spread over the threads,
    /// or the biggest file alone, whose SHA-256 cannot be split. A file is
    /// that critical path when its remaining bytes at one-message speed
    /// (2 GB/s here) take about as long as everything else at the
    /// threads' four-message speed (3.8 GB/s), that is when
    /// `remaining * 2 * threads >= rest`. Its thread then takes no
    /// companions, which would slow it to their pace, until the others
    /// have caught up. Before the input ends the rest is unknown, so every
    /// thread fills its lanes. On the minbase tree the 50 MB apt index
    /// otherwise finished alone, 18 ms after everything else (73 ms in
    /// all; 63 ms with this rule).
    fn wants_more(&self, lanes: &Lanes) -> bool {
        if lanes.is_full() {
            return false;
        }
        // One thread does all the work anyway: four messages at a time
        // is always faster then.
        if self.workers < 2 || !self.input_done.load(Ordering::Relaxed) {
            return true;
        }
        match lanes.largest() {
            None => true,
            Some((size, remaining)) => {
                let rest = self.unhashed.load(Ordering::Relaxed).saturating_sub(size);
                remaining.saturating_mul(2 * self.workers) < rest
            }
        }
    }

    /// The next job, largest first. With `wait`, sleeps until there is
    /// one, and gives `None` only once the pool is closed and empty;
    /// without, `None` when no job waits right now.
    fn take(&self, wait: bool) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop() {
                return Some(job);
            }
            if state.closed || !wait {
                return None;
            }
            state.idle_workers += 1;
            state = self
                .work
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.idle_workers -= 1;
        }
    }

    /// Waits for the oldest result, then takes it and every finished one
    /// after it, in order.
    fn take_finished(&self, into: &mut Vec<Reply>) {
        let mut state = self.lock();
        while matches!(state.results.front(), Some(None)) {
            state.writer_waiting = true;
            state = self
                .done
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.writer_waiting = false;
        }
        while let Some(Some(_)) = state.results.front() {
            if let Some(Some(reply)) = state.results.pop_front() {
                into.push(reply);
                state.first += 1;
            }
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
    tree: &mut Tree,
) -> Result<()> {
    let pool = Pool::new(opts.jobs);
    thread::scope(|scope| {
        for _ in 0..opts.jobs {
            let pool = &pool;
            let opener = tree.opener();
            scope.spawn(move || worker(pool, &opener));
        }
        let result = feed(records, out, opts, &pool, tree);
        pool.close(result.is_err());
        result
    })
}

/// Names in flight at most: about 3 MB of names and metadata, however
/// long the input. Large enough that the feeding thread reaches a big
/// file early (it `lstat`s about a million names a second), so the
/// largest-first order can start it long before the end: with a window of
/// 1024 names, the minbase tree's 50 MB apt index entered the window
/// as name 6,293 of 6,785 and was hashed nearly alone at the end.
const WINDOW: usize = 8192;

/// One hashing thread: files without content to read are answered at
/// once, regular files join the thread's lanes (see [`hashing`]). It
/// waits for a job only when it has no file in hand.
fn worker(pool: &Pool, opener: &Opener) {
    let mut lanes = Lanes::default();
    loop {
        while pool.wants_more(&lanes) {
            let Some(job) = pool.take(lanes.is_empty()) else {
                break;
            };
            let (seq, size) = (job.seq, job.size);
            let spare = lanes.spare_buffer();
            match start(job, opener, spare) {
                Ok(Started::Hash(stream)) => lanes.add(stream),
                Ok(Started::Done(fields)) => pool.finish(seq, size, Ok(fields)),
                Err(e) => pool.finish(seq, size, Err(e)),
            }
        }
        if lanes.is_empty() || pool.abandoned.load(Ordering::Relaxed) {
            return;
        }
        lanes.step(|seq, size, result| pool.finish(seq, size, result));
    }
}

// Built once per file and moved straight into the lanes: boxing the
// stream would cost an allocation per file for no gain.
#[allow(clippy::large_enum_variant)]
enum Started {
    /// A regular file, opened, to be hashed.
    Hash(Stream),
    /// Anything else, described.
    Done(Fields),
}

fn start(job: Job, opener: &Opener, buf: Option<Vec<u8>>) -> Result<Started> {
    let member = job.found.map_err(|e| at(job.line, &job.name, e))?;
    if !member.has_content() {
        return Ok(Started::Done(member.fields(None)));
    }
    Stream::open(job.seq, job.line, opener, job.name, member, buf).map(Started::Hash)
}

fn feed<R: BufRead, W: Write>(
    records: &mut RecordReader<R>,
    out: &mut W,
    opts: &Options,
    pool: &Pool,
    tree: &mut Tree,
) -> Result<()> {
    // The names in flight, oldest first, matching the pool's results.
    let mut names: VecDeque<Vec<u8>> = VecDeque::with_capacity(WINDOW + 1);
    let mut replies = Vec::with_capacity(WINDOW);
    let mut seq = 0;
    while let Some((name, line)) = next_name(records, opts)? {
        let found = tree.resolve(&name, None);
        let size = match &found {
            Ok(m) if m.has_content() => m.disk.size,
            _ => 0,
        };
        pool.push(Job {
            size,
            seq,
            line,
            name: name.clone(),
            found,
        });
        seq += 1;
        names.push_back(name);
        if names.len() >= WINDOW {
            write_finished(pool, &mut names, &mut replies, out, opts.output)?;
        }
    }
    pool.close(false);
    while !names.is_empty() {
        write_finished(pool, &mut names, &mut replies, out, opts.output)?;
    }
    Ok(())
}

/// Writes the oldest result and every finished one after it.
fn write_finished<W: Write>(
    pool: &Pool,
    names: &mut VecDeque<Vec<u8>>,
    replies: &mut Vec<Reply>,
    out: &mut W,
    term: Terminator,
) -> Result<()> {
    pool.take_finished(replies);
    for reply in replies.drain(..) {
        let name = names
            .pop_front()
            .ok_or_else(|| anyhow!("internal error: a result without a name"))?;
        emit(out, &name, &reply?, term)?;
    }
    Ok(())
}
