//! `mkinitrd`: turns a tree (names or list lines on stdin) into a newc cpio
//! archive the Linux kernel unpacks as an initramfs.
//!
//! [`newc`] is the archive writer, also used by `kvmrun` to append its
//! guest init as a second archive; [`pack`] decides what each input record
//! becomes (types, owners, hard links, inode numbers, mtimes); this file
//! holds the command line and the output plumbing (plain, or compressed
//! by the `compress` crate: gzip, zstd or lz4, on every core).

pub mod newc;
pub mod pack;

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use clap::Parser;
use filelist::owner::Ownership;
use filelist::records::{RecordReader, Terminator};

use crate::pack::{Add, Options, Packer};

/// Write a newc ("070701") cpio archive, the format the Linux kernel
/// unpacks as an initramfs, of the files named on stdin.
///
/// Each stdin record is a plain name as `find .` prints it, or a list line
/// (`NAME MODE-UID-GID-DIGEST`, as `fileids` prints it) whose mode and
/// owner are then used, and whose digest must still match the file.
/// Records must come sorted (`LC_ALL=C sort`), each name once, as
/// `layerdiff` wants lists; names are relative to DIR and never lead out
/// of it (no `..`, no leading `/`, no trailing `/`, no symlinked parent).
/// The root `.` becomes the member `.` (so the initramfs root gets its
/// mode); hard links share one inode number, the data on the last link.
/// On any error no trailer is written and the exit status is 1.
///
/// Typical use: `find . | LC_ALL=C sort | mkinitrd --owner 0:0 > NAME.initrd`
#[derive(Parser, Debug)]
#[command(name = "mkinitrd", version)]
pub struct Cli {
    #[command(flatten)]
    pub tree: filtertool::args::TreeArgs,
    #[command(flatten)]
    pub mtime: filtertool::args::MtimeArgs,
    #[command(flatten)]
    pub archive: filtertool::args::ArchiveArgs,
    /// Compress the archive: gzip[:1-9] (default 6), zstd[:1-19] (default
    /// 3) or lz4[:1] (the legacy frame, `lz4 -l`), the formats the kernel
    /// unpacks (CONFIG_RD_GZIP, CONFIG_RD_ZSTD, CONFIG_RD_LZ4). The bytes
    /// depend on the input and METHOD:LEVEL only, not on the cores.
    #[arg(long, value_name = "METHOD[:LEVEL]", value_parser = parse_compress)]
    pub compress: Option<compress::Spec>,
    /// The same as `--compress gzip`.
    #[arg(long, conflicts_with = "compress")]
    pub gzip: bool,
    /// Also add HOST_FILE as ARCHIVE_PATH, after the stdin entries (repeatable).
    #[arg(long, value_name = "ARCHIVE_PATH=HOST_FILE")]
    pub add: Vec<OsString>,
}

/// `--compress`'s value; the message names the option, so it is the one
/// line a usage error prints (filtertool's clap handling).
fn parse_compress(s: &str) -> Result<compress::Spec, String> {
    s.parse().map_err(|e| format!("--compress: {e}"))
}

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::filter("mkinitrd");

/// The tool's body: stdin to stdout.
pub fn run(cli: Cli) -> Result<u8> {
    let tree = cli.tree;
    tree.stdin_only.check("names")?;
    let adds = cli
        .add
        .iter()
        .map(|a| Add::parse(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(filtertool::usage)?;
    // The kernel's unpacker (init/initramfs.c) lets a later member of a
    // name replace the earlier one, so two would not fail: one silently wins.
    for (i, add) in adds.iter().enumerate() {
        if adds[..i].iter().any(|a| a.member == add.member) {
            return Err(filtertool::usage(format!(
                "--add {} given twice: an archive holds one member per name",
                filelist::entry::quote(&add.member)
            )));
        }
    }
    cli.archive.check_stdout()?;
    let ownership = Ownership::from_args(tree.owner, tree.fakeroot.as_deref())?;
    let epoch = filelist::epoch::source_date_epoch()?;
    let epoch = u32::try_from(epoch).map_err(|_| {
        anyhow::anyhow!("SOURCE_DATE_EPOCH {epoch} is after 2106, beyond newc's 32-bit mtime")
    })?;
    let opts = Options {
        dir: tree.dir,
        ownership,
        keep_mtime: cli.mtime.keep_mtime,
        epoch,
    };

    let stdin = std::io::stdin().lock();
    let mut records = RecordReader::new(stdin, Terminator::nul_if(tree.null));
    let mut out = filtertool::stdout();
    let spec = cli.compress.or(cli.gzip.then_some(compress::Spec {
        method: compress::Method::Gzip,
        level: compress::Method::Gzip.default_level(),
    }));
    if let Some(spec) = spec {
        // The gzip header has no file name and mtime 0 (RFC 1952 allows
        // MTIME 0 = "not available"), so the bytes depend on the input only.
        let encoder = compress::Encoder::new(spec, &mut out).context("writing stdout")?;
        let mut buffered = BufWriter::with_capacity(128 * 1024, encoder);
        pack_all(&mut buffered, &mut records, &opts, &adds).map_err(as_output_error)?;
        // On error, the encoder is dropped unfinished: it writes no
        // trailer, so a truncated archive is never a complete stream.
        let encoder = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing stdout")?;
        encoder.finish().context("writing stdout")?;
    } else {
        pack_all(&mut out, &mut records, &opts, &adds).map_err(as_output_error)?;
    }
    out.flush().context("writing stdout")?;
    Ok(0)
}

/// A failure of the output is reported as `writing stdout: WHY`, not
/// under the input line and member that were being written when it
/// happened (a full disk is no fault of `./usr/bin/bash`).
fn as_output_error(e: anyhow::Error) -> anyhow::Error {
    let output = e.chain().find_map(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<newc::OutputError>())
    });
    match output {
        Some(newc::OutputError(io)) => {
            anyhow::Error::new(std::io::Error::new(io.kind(), io.to_string()))
                .context("writing stdout")
        }
        None => e,
    }
}

/// The proper ancestors of a member name, outermost first (`a/b/c` →
/// `a`, `a/b`).
fn ancestors(member: &[u8]) -> Vec<Vec<u8>> {
    member
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| member[..i].to_vec())
        .collect()
}

/// Refuses a `--add` whose parent directories the archive does not
/// hold as directories by the time it is written.
fn check_parents(
    add: &Add,
    parents: &std::collections::HashMap<Vec<u8>, Option<bool>>,
) -> Result<()> {
    for dir in ancestors(&add.member) {
        let why = match parents.get(&dir).copied().flatten() {
            Some(true) => continue,
            Some(false) => "is not a directory in the archive",
            None => "is not in the archive (the kernel creates no missing directory: list it in the input)",
        };
        let mut given = add.member.clone();
        given.push(b'=');
        given.extend_from_slice(add.host.as_os_str().as_bytes());
        anyhow::bail!(
            "--add {}: its parent {} {why}",
            filelist::entry::quote(&given),
            filelist::entry::quote(&dir)
        );
    }
    Ok(())
}

/// The `--add` whose member is the input name `name` (`./init` and
/// `init` are one member).
fn added_too<'a>(adds: &'a [Add], name: &[u8]) -> Option<&'a Add> {
    if adds.is_empty() {
        return None;
    }
    let member = filelist::archive::member_name(name).ok()?;
    adds.iter().find(|a| a.member == member)
}

/// Archives every stdin record, then the `--add` files, then writes the
/// trailer. On error the trailer is not written. `-C DIR` is opened
/// before the first record is read, so a bad DIR fails even on empty
/// input; records must be sorted (as `layerdiff` checks lists: the same
/// rule and message).
fn pack_all<W: Write, R: std::io::BufRead>(
    out: W,
    records: &mut RecordReader<R>,
    opts: &Options,
    adds: &[Add],
) -> Result<()> {
    let mut packer = Packer::new(out, opts)?;
    let mut order = filelist::sorted::OrderCheck::new();
    // The directories the `--add` members go in, and whether the input
    // (or an earlier --add) made each a directory: the kernel's unpacker
    // creates no missing parent, and a member whose open fails is skipped
    // without a word (init/initramfs.c, do_name), so a `--add sbin/init`
    // without `sbin` would boot with no init.
    let mut parents: std::collections::HashMap<Vec<u8>, Option<bool>> = adds
        .iter()
        .flat_map(|a| ancestors(&a.member))
        .map(|p| (p, None))
        .collect();
    loop {
        let line = records.line() + 1;
        let record = match records.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(e).context("reading stdin"),
        };
        let input = filelist::entry::Input::parse(record);
        // A bad name is refused as such before its order is judged.
        filelist::tree::check_name(input.name())
            .map_err(anyhow::Error::new)
            .with_context(|| filelist::entry::quote(input.name()))
            .with_context(|| format!("stdin line {line}"))?;
        order.check("stdin", line, input.name())?;
        if let Some(add) = added_too(adds, input.name()) {
            let mut given = add.member.clone();
            given.push(b'=');
            given.extend_from_slice(add.host.as_os_str().as_bytes());
            return Err(anyhow::anyhow!(
                "{} is also given as --add {}: an archive holds one member per name \
                 (leave it out of the input, or drop the --add)",
                filelist::entry::quote(input.name()),
                filelist::entry::quote(&given),
            ))
            .with_context(|| format!("stdin line {line}"));
        }
        let mode = packer
            .add_input(&input)
            .with_context(|| format!("stdin line {line}"))?;
        // Without --add nothing is looked up (no allocation per record).
        if !parents.is_empty() {
            let member = filelist::archive::member_name(input.name()).unwrap_or_default();
            if let Some(dir) = parents.get_mut(&member) {
                *dir = Some(mode & 0o170000 == 0o040000);
            }
        }
    }
    for add in adds {
        check_parents(add, &parents)?;
        packer.add_host_file(add)?;
        if let Some(dir) = parents.get_mut(&add.member) {
            *dir = Some(std::fs::metadata(&add.host).is_ok_and(|m| m.is_dir()));
        }
    }
    packer.finish()?;
    Ok(())
}
