//! The `elfdeps` command line, as a clap derive struct whose doc
//! comments are the help text.

use std::io;
use std::path::PathBuf;

use clap::Parser;
use filtertool::args::StdinOnly;

/// Print the program interpreter and every shared library that the ELF
/// files named on stdin need, resolved as the dynamic loader would,
/// without running them.
#[derive(Parser)]
#[command(name = "elfdeps", version)]
pub struct Cli {
    /// Resolve inside DIR as if it were `/`; input paths are in-tree paths
    /// (absolute, or relative to DIR) and so are the printed paths.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Input paths end with NUL instead of newline.
    #[arg(short = '0', long = "null")]
    null: bool,
    /// Output paths end with NUL instead of newline.
    #[arg(short = 'z', long = "zero-terminated")]
    zero: bool,
    /// Warn about libraries not found instead of failing.
    #[arg(long)]
    allow_missing: bool,
    #[command(flatten)]
    stdin_only: StdinOnly,
}

/// The tool's body: ELF paths on stdin, what they need on stdout.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    cli.stdin_only.check("ELF paths")?;
    let opts = crate::Options {
        root: cli.root,
        nul_in: cli.null,
        nul_out: cli.zero,
        allow_missing: cli.allow_missing,
    };
    crate::run(&opts, io::stdin().lock(), filtertool::stdout())
}
