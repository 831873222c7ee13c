//! The runner every tool's `main` uses, so that all of them behave alike:
//!
//! - an error is printed once, on one line, as `tool: what failed: why`;
//! - the exit code is the tool's failure code unless the error carries its
//!   own ([`Failure`]), so the runners can exit 124/125/126/127;
//! - a write to a closed stdout (`fileids | head`) ends the tool quietly
//!   with status 0, as `head` users expect: Rust ignores SIGPIPE, so the
//!   write fails with `EPIPE` and is recognised here;
//! - argument errors are one line too, with the usage code the tool picks
//!   (2 for filters like coreutils, 125 for the runners like `docker run`);
//! - the options several tools share are clap argument structs ([`args`]),
//!   so each is spelled and parsed once, into a typed value.
//!
//! Every tool's `main.rs` is the same two lines,
//! `filtertool::main(tool::PROGRAM, tool::run)`, where `PROGRAM` is a
//! [`Tool`] (name and exit codes) and `run` takes the parsed command line.

pub mod args;
pub mod quote;

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// Exit codes of the runners, after `docker run` and `env`.
pub mod exit {
    /// `--timeout` fired (as `timeout(1)`).
    pub const TIMEOUT: u8 = 124;
    /// The runner itself failed.
    pub const RUNNER_FAILED: u8 = 125;
    /// The command exists but cannot be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// The command does not exist.
    pub const NOT_FOUND: u8 = 127;
    /// Usage errors of the filters (as coreutils).
    pub const USAGE: u8 = 2;
    /// Any other failure of a filter.
    pub const FAILURE: u8 = 1;
}

/// A tool: its name in messages and the exit codes of its two kinds of
/// failure. The filters follow coreutils (usage 2, failure 1); the runners
/// follow `docker run`, whose usage errors are 125 like its own failures,
/// so that 1 and 2 stay the program's own codes.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub name: &'static str,
    pub usage: u8,
    pub failure: u8,
}

impl Tool {
    /// A filter: usage 2, failure 1.
    pub const fn filter(name: &'static str) -> Tool {
        Tool {
            name,
            usage: exit::USAGE,
            failure: exit::FAILURE,
        }
    }

    /// A runner: usage and failure 125; the program's code passes through.
    pub const fn runner(name: &'static str) -> Tool {
        Tool {
            name,
            usage: exit::RUNNER_FAILED,
            failure: exit::RUNNER_FAILED,
        }
    }
}

/// An error that decides the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// A usage error (bad option value, stray argument): exit 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    /// The exit code this error asks for.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error with exit code `code`.
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

/// "a FIFO", "a character device", …: what a path is, for a message that
/// refuses it where a regular file was expected.
pub fn file_type_name(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// True when the error, or anything in its chain, is `EPIPE`.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The exit code an error asks for, if any.
pub fn failure_code(err: &anyhow::Error) -> Option<u8> {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(Failure::exit_code))
}

/// A usage error as an `anyhow::Error` (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure::usage(message))
}

/// Formats an error chain as one line (`a: b: c`), with any newline that
/// a cause carries escaped so messages never span lines, and Rust's
/// " (os error N)" suffix of io errors left out (the text before it is
/// strerror(3)'s, which is what a Unix tool prints).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(&strip_os_error(&cause.to_string()).replace('\n', "\\n"));
    }
    out
}

/// `text` without any " (os error N)".
fn strip_os_error(text: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        let after = &rest[i + MARK.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..i + MARK.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Every tool's `main`: parses the command line into `C` and runs the
/// tool's body on it ([`parse_args`], then [`run_main`]).
pub fn main<C: clap::Parser>(tool: Tool, run: fn(C) -> anyhow::Result<u8>) -> ExitCode {
    let cli: C = parse_args(tool.name, tool.usage);
    run_main(tool.name, tool.failure, || run(cli))
}

/// Runs a tool's body and turns its result into the process status.
///
/// `run` returns the exit code on success (0 normally; the runners pass
/// their program's code through).
pub fn run_main<F>(tool: &str, default_code: u8, run: F) -> ExitCode
where
    F: FnOnce() -> anyhow::Result<u8>,
{
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            report(tool, &err);
            ExitCode::from(failure_code(&err).unwrap_or(default_code))
        }
    }
}

/// Prints `tool: message` on stderr.
pub fn report(tool: &str, err: &anyhow::Error) {
    let _ = writeln!(io::stderr().lock(), "{tool}: {}", one_line(err));
}

/// Prints a one-line warning, `tool: warning: message`.
pub fn warn(tool: &str, message: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{tool}: warning: {message}");
}

/// Parses the command line; `--help` and `--version` print and exit 0, a
/// usage error prints one line and exits with `usage_code`.
pub fn parse_args<T: clap::Parser>(tool: &str, usage_code: u8) -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            // `dockpack` alone: the help (which lists the subcommands) on
            // stderr, as a usage error, as git(1) does.
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = write!(io::stderr().lock(), "{}", e.render());
                std::process::exit(i32::from(usage_code));
            }
            let _ = writeln!(
                io::stderr().lock(),
                "{tool}: {} (try --help)",
                usage_message(&e)
            );
            std::process::exit(i32::from(usage_code));
        }
    }
}

/// The one line for a clap error: a value parser's own message where it
/// names its option (`--owner wants UID:GID…`), else clap's.
fn usage_message(e: &clap::Error) -> String {
    use std::error::Error as _;
    if e.kind() == clap::error::ErrorKind::ValueValidation {
        if let Some(source) = e.source().map(ToString::to_string) {
            if source.starts_with("--") {
                return source.replace('\n', "\\n");
            }
        }
    }
    first_paragraph(&e.render().to_string())
}

/// clap's message up to its usage block, on one line: the first line
/// may end in a colon with the details indented below it (`the following
/// required arguments were not provided:` / `  <DIR>`).
fn first_paragraph(rendered: &str) -> String {
    let text: Vec<&str> = rendered
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = text.join(" ");
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    if joined.is_empty() {
        "bad arguments".to_string()
    } else {
        joined.to_string()
    }
}

/// A block-buffered stdout. Pipes are the normal case for these tools, and
/// Rust's own stdout is line-buffered, which costs a syscall per line.
pub fn stdout() -> BufWriter<io::StdoutLock<'static>> {
    BufWriter::with_capacity(128 * 1024, io::stdout().lock())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn broken_pipe_is_found_through_context() {
        let e: anyhow::Result<()> = Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
        let e = e.context("writing stdout").unwrap_err();
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn failure_codes_survive_context() {
        let e = Err::<(), _>(fail(126, "x: not executable"))
            .context("running x")
            .unwrap_err();
        assert_eq!(failure_code(&e), Some(126));
        assert_eq!(one_line(&e), "running x: x: not executable");
    }

    #[test]
    fn clap_errors_keep_their_details() {
        assert_eq!(
            first_paragraph(
                "error: the following required arguments were not provided:\n  <DIR>\n\nUsage: x DIR\n"
            ),
            "the following required arguments were not provided: <DIR>"
        );
        assert_eq!(first_paragraph(""), "bad arguments");
    }

    #[derive(clap::Parser, Debug)]
    struct Probe {
        #[command(flatten)]
        tree: args::TreeArgs,
        #[command(flatten)]
        archive: args::ArchiveArgs,
    }

    fn usage_of(argv: &[&str]) -> String {
        use clap::Parser;
        let e = Probe::try_parse_from(argv).unwrap_err();
        usage_message(&e)
    }

    #[test]
    fn value_errors_that_name_their_option_are_shown_as_is() {
        assert_eq!(
            usage_of(&["t", "--owner", "root"]),
            "--owner wants UID:GID in decimal, not \"root\""
        );
        // clap's own message otherwise, on one line.
        assert!(usage_of(&["t", "--bogus"]).starts_with("unexpected argument '--bogus'"));
        use clap::Parser;
        let p = Probe::try_parse_from(["t", "-0", "--owner", "1:2", "-f", "-C", "d", "x"]).unwrap();
        assert!(p.tree.null && p.archive.force);
        assert_eq!(p.tree.owner, Some(args::Owner { uid: 1, gid: 2 }));
        assert!(p.tree.stdin_only.check("names").is_err());
    }

    #[test]
    fn filters_and_runners_have_their_codes() {
        assert_eq!((Tool::filter("x").usage, Tool::filter("x").failure), (2, 1));
        assert_eq!(
            (Tool::runner("x").usage, Tool::runner("x").failure),
            (125, 125)
        );
        let e = usage("bad");
        assert_eq!(failure_code(&e), Some(exit::USAGE));
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = anyhow::anyhow!("a\nb");
        assert_eq!(one_line(&e), "a\\nb");
    }

    #[test]
    fn os_error_numbers_are_left_out() {
        let e: anyhow::Result<()> = Err(io::Error::from_raw_os_error(libc_enoent()).into());
        let e = e.context("cannot open \"x\"").unwrap_err();
        assert_eq!(one_line(&e), "cannot open \"x\": No such file or directory");
        assert_eq!(strip_os_error("a (os error x)"), "a (os error x)");
        assert_eq!(strip_os_error("a (os error 2) at b"), "a at b");
    }

    fn libc_enoent() -> i32 {
        2 // ENOENT on every Linux architecture
    }
}
