//! `elfdeps`: the program interpreter and every shared library that ELF
//! files need, resolved as glibc's ld.so would, without running anything.
//! It replaces `ldd` in the cookbook's `libs.fs.do`: ldd runs
//! the binary's own loader, which is unsafe on untrusted binaries,
//! impossible for another architecture and wrong for a tree that is not
//! the host's.
//!
//! Input: one path per record (LF, or NUL with `-0`). Without `--root` a
//! relative path is relative to the working directory. With `--root DIR`
//! every path is a path inside the tree: `/bin/sh` and `bin/sh` (as
//! `cd DIR && find . -type f` prints it, `./bin/sh`) both mean DIR/bin/sh.
//! Output: the union over all inputs, sorted bytewise, one absolute
//! in-tree path per record (LF, or NUL with `-z`), written only once
//! everything resolved. With `--root` no printed path holds `.` or `..`
//! (they are resolved in the tree), so joining it with DIR stays in DIR.

pub mod cli;
pub mod elf;
pub mod ldconf;
pub mod platform;
pub mod resolve;
pub mod tree;

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use filelist::records::{check_name, RecordReader, Terminator};
use filtertool::quote::Quoted;

pub use resolve::{Outcome, Resolver};

pub const TOOL: &str = "elfdeps";

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::filter(TOOL);

/// The command line, parsed.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub root: Option<PathBuf>,
    pub nul_in: bool,
    pub nul_out: bool,
    pub allow_missing: bool,
}

/// Reads paths from `input`, writes what they need to `out`.
pub fn run(opts: &Options, input: impl BufRead, mut out: impl Write) -> Result<u8> {
    let mut resolver = Resolver::new(opts.root.as_deref())?;
    let mut reader = RecordReader::new(input, Terminator::nul_if(opts.nul_in));
    let mut paths = BTreeSet::new();
    let mut missing = BTreeSet::new();
    while let Some(rec) = reader.next_record().context("reading stdin")? {
        if rec.is_empty() {
            bail!("stdin record {}: empty path", reader.line());
        }
        let outcome = resolver.resolve_input(rec)?;
        paths.extend(outcome.paths);
        missing.extend(outcome.missing);
    }
    if !missing.is_empty() {
        if opts.allow_missing {
            for (name, by) in &missing {
                filtertool::warn(
                    TOOL,
                    format_args!("{}: not found (needed by {})", Quoted(name), Quoted(by)),
                );
            }
        } else {
            let list: Vec<String> = missing
                .iter()
                .map(|(name, by)| format!("{} (needed by {})", Quoted(name), Quoted(by)))
                .collect();
            bail!("libraries not found: {}", list.join(", "));
        }
    }
    let term = Terminator::nul_if(opts.nul_out);
    for p in &paths {
        check_name(p, term).map_err(|why| anyhow!("{}: {why}", Quoted(p)))?;
    }
    for p in &paths {
        out.write_all(p).context("writing stdout")?;
        out.write_all(&[term.byte()]).context("writing stdout")?;
    }
    out.flush().context("writing stdout")?;
    Ok(0)
}
