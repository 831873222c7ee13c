//! `layerdiff`: what a layer on top of BASE must hold to give NEW.
//!
//! Without `--whiteouts` this is the cookbook's `comm -1 -3 BASE NEW`: the
//! NEW lines that BASE lacks, i.e. new files and files whose mode, owner or
//! content changed. It is one merge pass over two sorted lists, so it runs
//! in linear time and constant memory, and unlike `comm` it refuses input
//! that is not sorted, naming the file and line.
//!
//! With `--whiteouts` deletions are recorded too, as OCI whiteouts
//! (image-spec `layer.md`, "Whiteouts"): a file `DIR/.wh.NAME` hides
//! `DIR/NAME` of the layers below, a whole directory included, so only the
//! topmost deleted directory gets one. A whiteout sorts at `DIR/.wh.NAME`,
//! which can be far before `DIR/NAME` (everything in DIR from `.wh.` on
//! comes between), so the output cannot be written in order as the merge
//! goes. The merge therefore writes the NEW lines to an unnamed temporary
//! file and keeps the whiteout names, then merges the two: memory grows
//! with the number of topmost deletions only, never with the lists.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};

use anyhow::{bail, Context, Result};
use clap::Parser;
use filelist::entry::{quote, split_line, write_line, Fields};
use filelist::records::{RecordReader, Terminator};
use filelist::sorted::{ListReader, Record};

/// Print the lines of NEW that are not in BASE: new files and changed
/// files, as `comm -1 -3 BASE NEW` does for sorted lists.
///
/// Both lists must be sorted by name (LC_ALL=C). Either may be `-` for
/// stdin; `/dev/null` is the empty base of a bottom layer.
#[derive(Parser, Debug)]
#[command(name = "layerdiff", version)]
pub struct Cli {
    /// Also print a whiteout line (DIR/.wh.NAME 0100000-0-0-whiteout) for
    /// every name of BASE that NEW lacks; one per deleted directory.
    #[arg(long)]
    pub whiteouts: bool,
    /// Records are NUL-terminated, in and out.
    #[arg(short = 'z', long = "zero-terminated")]
    pub zero: bool,
    /// The list of the layers below.
    #[arg(value_name = "BASE")]
    pub base: OsString,
    /// The list of the whole tree wanted.
    #[arg(value_name = "NEW")]
    pub new: OsString,
}

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::filter("layerdiff");

/// The tool's body.
pub fn run(cli: Cli) -> Result<u8> {
    if cli.base == "-" && cli.new == "-" {
        bail!("BASE and NEW cannot both be stdin");
    }
    let term = Terminator::nul_if(cli.zero);
    let base = open_list(&cli.base, term)?;
    let new = open_list(&cli.new, term)?;
    let mut out = filtertool::stdout();
    if cli.whiteouts {
        diff_with_whiteouts(base, new, &mut out, term)?;
    } else {
        diff(base, new, &mut out, term)?;
    }
    out.flush().context("writing stdout")?;
    Ok(0)
}

type Input = ListReader<Box<dyn BufRead>>;

fn open_list(path: &OsString, term: Terminator) -> Result<Input> {
    const BUF: usize = 256 * 1024;
    if path == "-" {
        let reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(BUF, io::stdin()));
        return Ok(ListReader::new(reader, term, "stdin"));
    }
    // The name as every message shows it: quoted, so a list named with a
    // newline or an escape cannot forge a line.
    let shown = filtertool::quote::quote_os(path);
    let file = File::open(path).with_context(|| format!("{shown}: cannot open"))?;
    let reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(BUF, file));
    Ok(ListReader::new(reader, term, shown))
}

/// What the merge reports, in BASE/NEW name order.
trait Sink {
    /// A NEW line that BASE does not have (new or changed).
    fn new_line(&mut self, line: &[u8]) -> Result<()>;
    /// A BASE name that NEW lacks.
    fn deleted(&mut self, base: &Record<'_>) -> Result<()>;
    /// A name that is a directory in BASE and something else in NEW: the
    /// new entry replaces the directory and everything under it.
    fn replaced_dir(&mut self, name: &[u8]);
}

/// Merges two sorted lists, reporting differences to `sink`.
fn merge<B: BufRead, N: BufRead, S: Sink>(
    base: &mut ListReader<B>,
    new: &mut ListReader<N>,
    sink: &mut S,
) -> Result<()> {
    enum Step {
        Base,
        New,
        Both,
    }
    base.advance()?;
    new.advance()?;
    loop {
        let step = match (base.current(), new.current()) {
            (None, None) => return Ok(()),
            (Some(b), None) => {
                sink.deleted(&b)?;
                Step::Base
            }
            (None, Some(n)) => {
                sink.new_line(n.line)?;
                Step::New
            }
            (Some(b), Some(n)) => match b.name.cmp(n.name) {
                std::cmp::Ordering::Less => {
                    sink.deleted(&b)?;
                    Step::Base
                }
                std::cmp::Ordering::Greater => {
                    sink.new_line(n.line)?;
                    Step::New
                }
                std::cmp::Ordering::Equal => {
                    // Lines are canonical (the parser refuses any other
                    // spelling), so equal bytes mean equal files.
                    if b.line != n.line {
                        sink.new_line(n.line)?;
                    }
                    if b.fields.is_dir() && !n.fields.is_dir() {
                        sink.replaced_dir(b.name);
                    }
                    Step::Both
                }
            },
        };
        match step {
            Step::Base => {
                base.advance()?;
            }
            Step::New => {
                new.advance()?;
            }
            Step::Both => {
                base.advance()?;
                new.advance()?;
            }
        }
    }
}

/// `comm -1 -3`: writes the NEW lines that BASE lacks.
pub fn diff<B: BufRead, N: BufRead, W: Write>(
    mut base: ListReader<B>,
    mut new: ListReader<N>,
    out: &mut W,
    term: Terminator,
) -> Result<()> {
    struct Plain<'w, W> {
        out: &'w mut W,
        term: u8,
    }
    impl<W: Write> Sink for Plain<'_, W> {
        fn new_line(&mut self, line: &[u8]) -> Result<()> {
            self.out.write_all(line).context("writing stdout")?;
            self.out.write_all(&[self.term]).context("writing stdout")
        }
        fn deleted(&mut self, _base: &Record<'_>) -> Result<()> {
            Ok(())
        }
        fn replaced_dir(&mut self, _name: &[u8]) {}
    }
    merge(
        &mut base,
        &mut new,
        &mut Plain {
            out,
            term: term.byte(),
        },
    )
}

/// Is `name` inside directory `dir` (`dir/…`)?
fn is_under(name: &[u8], dir: &[u8]) -> bool {
    name.len() > dir.len() && name.starts_with(dir) && name[dir.len()] == b'/'
}

/// Has a sorted walk that reached `name` left everything under `dir`
/// behind? Names under `dir` are exactly those starting with `dir/`, so
/// they are contiguous in byte order; names like `dir-x` (a byte below
/// `/`) still come before them.
fn is_past(name: &[u8], dir: &[u8]) -> bool {
    if !name.starts_with(dir) {
        // `name` comes after `dir` in the walk and differs within its
        // first bytes, so it is after every `dir/…` too.
        return true;
    }
    name.get(dir.len()).is_some_and(|&b| b > b'/')
}

/// The whiteout that hides `name`: `DIR/.wh.BASENAME`.
pub fn whiteout_name(name: &[u8]) -> Option<Vec<u8>> {
    let (parent, base) = match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => (&b""[..], name),
    };
    if base.is_empty() || base == b"." || base == b".." {
        return None;
    }
    Some([parent, b".wh.", base].concat())
}

struct Whiteouts<W> {
    spool: W,
    term: u8,
    /// Names whose whole subtree is already hidden: deleted directories
    /// and directories replaced by a non-directory. Kept in walk order;
    /// entries whose subtree the walk has passed are dropped.
    covered: Vec<Vec<u8>>,
    names: Vec<Vec<u8>>,
}

impl<W> Whiteouts<W> {
    fn covers(&mut self, name: &[u8]) -> bool {
        self.covered.retain(|dir| !is_past(name, dir));
        self.covered.iter().any(|dir| is_under(name, dir))
    }
}

impl<W: Write> Sink for Whiteouts<W> {
    fn new_line(&mut self, line: &[u8]) -> Result<()> {
        self.spool
            .write_all(line)
            .context("writing temporary file")?;
        self.spool
            .write_all(&[self.term])
            .context("writing temporary file")
    }

    fn deleted(&mut self, base: &Record<'_>) -> Result<()> {
        if self.covers(base.name) {
            return Ok(());
        }
        if let Some(w) = whiteout_name(base.name) {
            self.names.push(w);
        }
        if base.fields.is_dir() {
            self.covered.push(base.name.to_vec());
        }
        Ok(())
    }

    fn replaced_dir(&mut self, name: &[u8]) {
        // Called in walk order, so pruning here keeps `covered` small.
        self.covers(name);
        self.covered.push(name.to_vec());
    }
}

/// `comm -1 -3` plus whiteout lines for deletions, all in name order.
pub fn diff_with_whiteouts<B: BufRead, N: BufRead, W: Write>(
    mut base: ListReader<B>,
    mut new: ListReader<N>,
    out: &mut W,
    term: Terminator,
) -> Result<()> {
    let spool = tempfile::tempfile().context("creating a temporary file")?;
    let mut sink = Whiteouts {
        spool: BufWriter::with_capacity(256 * 1024, spool),
        term: term.byte(),
        covered: Vec::new(),
        names: Vec::new(),
    };
    merge(&mut base, &mut new, &mut sink)?;
    let mut spool = sink
        .spool
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing temporary file")?;
    spool.rewind().context("rereading temporary file")?;
    let mut whiteouts = sink.names;
    // Whiteout names are distinct (distinct deleted names give distinct
    // whiteouts), so an unstable sort is deterministic.
    whiteouts.sort_unstable();

    let whiteout = Fields::whiteout();
    let mut pending = whiteouts.iter().peekable();
    let mut lines = RecordReader::new(BufReader::with_capacity(256 * 1024, spool), term);
    while let Some(line) = lines.next_record().context("rereading temporary file")? {
        let name = split_line(line)
            .map(|(name, _)| name)
            .map_err(|e| anyhow::anyhow!("rereading temporary file: {e}"))?;
        while let Some(w) = pending.next_if(|w| w.as_slice() <= name) {
            if w.as_slice() == name {
                bail!(
                    "{}: NEW has a file of that name, which is also the whiteout of a deleted file",
                    quote(name)
                );
            }
            write_line(out, w, &whiteout, term).context("writing stdout")?;
        }
        out.write_all(line).context("writing stdout")?;
        out.write_all(&[term.byte()]).context("writing stdout")?;
    }
    for w in pending {
        write_line(out, w, &whiteout, term).context("writing stdout")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_diff(base: &str, new: &str, whiteouts: bool) -> Result<String> {
        let b = ListReader::new(base.as_bytes(), Terminator::Newline, "base");
        let n = ListReader::new(new.as_bytes(), Terminator::Newline, "new");
        let mut out = Vec::new();
        if whiteouts {
            diff_with_whiteouts(b, n, &mut out, Terminator::Newline)?;
        } else {
            diff(b, n, &mut out, Terminator::Newline)?;
        }
        Ok(String::from_utf8(out).unwrap())
    }

    const D: &str = "0040755-0-0-0";
    const F1: &str = "0100644-0-0-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    const F2: &str = "0100644-0-0-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn list(lines: &[(&str, &str)]) -> String {
        lines.iter().map(|(n, f)| format!("{n} {f}\n")).collect()
    }

    #[test]
    fn new_and_changed_lines() {
        let base = list(&[(".", D), ("./a", F1), ("./b", F1)]);
        let new = list(&[(".", D), ("./a", F1), ("./b", F2), ("./c", F1)]);
        assert_eq!(
            run_diff(&base, &new, false).unwrap(),
            list(&[("./b", F2), ("./c", F1)])
        );
    }

    #[test]
    fn empty_base_gives_everything() {
        let new = list(&[(".", D), ("./a", F1)]);
        assert_eq!(run_diff("", &new, false).unwrap(), new);
        assert_eq!(run_diff(&new, "", false).unwrap(), "");
    }

    #[test]
    fn whiteouts_for_the_topmost_deleted_directory_only() {
        let base = list(&[
            (".", D),
            ("./a", D),
            ("./a-b", F1),
            ("./a/x", F1),
            ("./a/y", D),
            ("./a/y/z", F1),
            ("./keep", D),
            ("./keep/gone", F1),
            ("./keep/stay", F1),
            ("./z", F1),
        ]);
        let new = list(&[
            (".", D),
            ("./a-b", F1),
            ("./keep", D),
            ("./keep/stay", F1),
            ("./new", F2),
        ]);
        assert_eq!(
            run_diff(&base, &new, true).unwrap(),
            list(&[
                ("./.wh.a", "0100000-0-0-whiteout"),
                ("./.wh.z", "0100000-0-0-whiteout"),
                ("./keep/.wh.gone", "0100000-0-0-whiteout"),
                ("./new", F2),
            ])
        );
    }

    #[test]
    fn a_directory_replaced_by_a_file_needs_no_whiteouts_below() {
        let base = list(&[(".", D), ("./d", D), ("./d/x", F1)]);
        let new = list(&[(".", D), ("./d", F1)]);
        assert_eq!(run_diff(&base, &new, true).unwrap(), list(&[("./d", F1)]));
    }

    #[test]
    fn prefix_siblings_do_not_hide_deletions() {
        // ./a-b sorts between ./a and ./a/…; deleting ./a-b/x must still
        // be recorded while ./a is a covered directory.
        let base = list(&[
            (".", D),
            ("./a", D),
            ("./a-b", D),
            ("./a-b/x", F1),
            ("./a/y", F1),
        ]);
        let new = list(&[(".", D), ("./a-b", D)]);
        assert_eq!(
            run_diff(&base, &new, true).unwrap(),
            list(&[
                ("./.wh.a", "0100000-0-0-whiteout"),
                ("./a-b/.wh.x", "0100000-0-0-whiteout")
            ])
        );
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout_name(b"./a/b").unwrap(), b"./a/.wh.b");
        assert_eq!(whiteout_name(b"a").unwrap(), b".wh.a");
        assert_eq!(whiteout_name(b"."), None);
    }

    #[test]
    fn refuses_unsorted_and_duplicated_input() {
        let e = run_diff("", &list(&[("./b", F1), ("./a", F1)]), false).unwrap_err();
        assert!(e.to_string().starts_with("new: line 2: not sorted"), "{e}");
        let e = run_diff(&list(&[("./a", F1), ("./a", F1)]), "", false).unwrap_err();
        assert_eq!(e.to_string(), "base: line 2: duplicate name \"./a\"");
    }
}
