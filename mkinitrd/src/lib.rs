//! `mkinitrd`: turns a tree (names or list lines on stdin) into a newc cpio
//! archive the Linux kernel unpacks as an initramfs.
//!
//! [`newc`] is the archive writer, also used by `kvmrun` to append its
//! guest init as a second archive; [`pack`] decides what each input record
//! becomes (types, owners, hard links, inode numbers, mtimes); this file
//! holds the command line and the output plumbing (plain or gzip).

pub mod newc;
pub mod pack;

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

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
    /// Resolve names relative to DIR instead of the current directory.
    #[arg(short = 'C', value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Records on stdin are NUL-terminated (find -print0).
    #[arg(short = '0', long = "null")]
    pub null_in: bool,
    /// Record every file as owned by UID:GID (e.g. 0:0).
    #[arg(long, value_name = "UID:GID")]
    pub owner: Option<String>,
    /// Take ownership, modes and device numbers from a `fakeroot -s` state file.
    #[arg(long, value_name = "STATE")]
    pub fakeroot: Option<PathBuf>,
    /// Keep each file's mtime instead of SOURCE_DATE_EPOCH (0 where unset).
    #[arg(long)]
    pub keep_mtime: bool,
    /// Compress the archive with gzip (the kernel unpacks gzip initrds).
    #[arg(long)]
    pub gzip: bool,
    /// Also add HOST_FILE as ARCHIVE_PATH, after the stdin entries (repeatable).
    #[arg(long, value_name = "ARCHIVE_PATH=HOST_FILE")]
    pub add: Vec<OsString>,
}

/// The tool's body: stdin to stdout.
pub fn run(cli: Cli) -> Result<u8> {
    let adds = cli
        .add
        .iter()
        .map(|a| Add::parse(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| filtertool::fail(filtertool::exit::USAGE, e))?;
    if let Some(owner) = &cli.owner {
        filelist::owner::parse_owner(owner)
            .map_err(|e| filtertool::fail(filtertool::exit::USAGE, e))?;
    }
    let ownership = Ownership::from_options(cli.owner.as_deref(), cli.fakeroot.as_deref())
        .map_err(|e| filtertool::fail(e.exit_code(), e.to_string()))?;
    let epoch = filelist::epoch::source_date_epoch()?;
    let epoch = u32::try_from(epoch).map_err(|_| {
        anyhow::anyhow!("SOURCE_DATE_EPOCH {epoch} is after 2106, beyond newc's 32-bit mtime")
    })?;
    let opts = Options {
        dir: cli.dir,
        ownership,
        keep_mtime: cli.keep_mtime,
        epoch,
    };

    let stdin = std::io::stdin().lock();
    let mut records = RecordReader::new(stdin, Terminator::nul_if(cli.null_in));
    let mut out = filtertool::stdout();
    if cli.gzip {
        // No file name and mtime 0 in the gzip header (RFC 1952 allows
        // MTIME 0 = "not available"), so the bytes depend on the input only.
        let encoder = flate2::GzBuilder::new().write(&mut out, flate2::Compression::default());
        let mut buffered = BufWriter::with_capacity(128 * 1024, encoder);
        match pack_all(&mut buffered, &mut records, &opts, &adds) {
            Ok(()) => {
                let encoder = buffered
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context("writing stdout")?;
                encoder.finish().context("writing stdout")?;
            }
            Err(e) => {
                // Dropping a GzEncoder writes the gzip trailer, which would
                // make a truncated archive a valid .gz; leave it unfinished.
                std::mem::forget(buffered);
                return Err(e);
            }
        }
    } else {
        pack_all(&mut out, &mut records, &opts, &adds)?;
    }
    out.flush().context("writing stdout")?;
    Ok(0)
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
        packer
            .add_input(&input)
            .with_context(|| format!("stdin line {line}"))?;
    }
    for add in adds {
        packer.add_host_file(add)?;
    }
    packer.finish()?;
    Ok(())
}
