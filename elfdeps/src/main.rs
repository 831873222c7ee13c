//! The `elfdeps` command: parses the arguments and runs [`elfdeps::run`]
//! under the shared runner (one-line errors, exit codes, quiet EPIPE).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use filtertool::exit;

/// Print the program interpreter and every shared library that the ELF
/// files named on stdin need, resolved as the dynamic loader would,
/// without running them.
#[derive(Parser)]
#[command(name = "elfdeps", version)]
struct Cli {
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
}

fn main() -> ExitCode {
    filtertool::main(elfdeps::TOOL, exit::FAILURE, || {
        let cli: Cli = filtertool::parse_args(elfdeps::TOOL, exit::USAGE);
        let opts = elfdeps::Options {
            root: cli.root,
            nul_in: cli.null,
            nul_out: cli.zero,
            allow_missing: cli.allow_missing,
        };
        elfdeps::run(&opts, io::stdin().lock(), filtertool::stdout())
    })
}
