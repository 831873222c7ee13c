//! The options several tools share, as clap argument structs that each
//! tool flattens into its own (`#[command(flatten)]`): a flag is spelled,
//! documented and parsed once, and its value arrives typed (`--owner` as
//! a [`Owner`], `--timeout` as a `Duration`), so a bad value is a usage
//! error from clap before the tool starts, never a string parsed later.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::Failure;

/// `--owner UID:GID`: numeric ids, as `tar --owner=NAME:UID` and `chown`
/// take them; names would need the tree's `/etc/passwd`, not the host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Parses `UID:GID` in decimal; the message names the option, so the
/// usage line shows it as is.
pub fn parse_owner(text: &str) -> Result<Owner, String> {
    let bad = || format!("--owner wants UID:GID in decimal, not {text:?}");
    let (u, g) = text.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u32>().map_err(|_| bad())
    };
    Ok(Owner {
        uid: num(u)?,
        gid: num(g)?,
    })
}

/// The options of the tools that read names of a tree on stdin (fileids,
/// mkinitrd, dockpack layer).
#[derive(clap::Args, Debug, Clone)]
pub struct TreeArgs {
    /// Resolve names relative to DIR instead of the current directory.
    #[arg(short = 'C', value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Records on stdin are NUL-terminated (find -print0).
    #[arg(short = '0', long = "null")]
    pub null: bool,
    /// Record every file as owned by UID:GID (e.g. 0:0).
    #[arg(long, value_name = "UID:GID", value_parser = parse_owner)]
    pub owner: Option<Owner>,
    /// Take ownership, modes and device numbers from a `fakeroot -s` state file.
    #[arg(long, value_name = "STATE")]
    pub fakeroot: Option<PathBuf>,
    /// The stray FILE arguments [`StdinOnly`] refuses.
    #[command(flatten)]
    pub stdin_only: StdinOnly,
}

/// The options of the archivers (mkinitrd, dockpack layer and image).
#[derive(clap::Args, Debug, Clone)]
pub struct ArchiveArgs {
    /// Write the archive even when stdout is a terminal.
    #[arg(short = 'f', long)]
    pub force: bool,
}

impl ArchiveArgs {
    /// Refuses to write binary to a terminal, as gzip(1) does ("compressed
    /// data not written to a terminal"): it would garble the screen and
    /// the archive is lost anyway. `--force` or a redirect is the way out.
    pub fn check_stdout(&self) -> Result<(), Failure> {
        if !self.force && std::io::stdout().is_terminal() {
            return Err(Failure::usage(
                "archive not written to a terminal: redirect stdout (> FILE or | ...) or use --force",
            ));
        }
        Ok(())
    }
}

/// The packers' `--keep-mtime`.
#[derive(clap::Args, Debug, Clone)]
pub struct MtimeArgs {
    /// Keep each file's mtime instead of SOURCE_DATE_EPOCH (0 where unset).
    #[arg(long)]
    pub keep_mtime: bool,
}

/// Which extended attributes `fileids` and `dockpack layer` read
/// (docs/DESIGN.md, "The list format"; the namespaces and why are in
/// `filelist::xattr`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct XattrArgs {
    /// Read no extended attributes: lines as before, no `+XATTRS` part
    /// (and a list line's xattr digest goes unchecked).
    #[arg(long = "no-xattrs", conflicts_with = "xattrs")]
    pub no_xattrs: bool,
    /// Which xattrs to read: `default` (security.capability, user.*,
    /// trusted.*) or `all` (those and security labels such as
    /// security.selinux).
    #[arg(long = "xattrs", value_name = "WHICH", value_enum)]
    pub xattrs: Option<XattrWhich>,
}

/// The value of `--xattrs`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrWhich {
    Default,
    All,
}

/// The filters read their input on stdin; a file argument
/// (`elfdeps /usr/bin/ls`) is caught here so the message says so instead
/// of clap's bare "unexpected argument".
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StdinOnly {
    #[arg(value_name = "FILE", hide = true)]
    pub stray: Vec<OsString>,
}

impl StdinOnly {
    /// A usage error when any file argument was given; `what` is what
    /// the tool reads (`ELF paths`, `names`).
    pub fn check(&self, what: &str) -> Result<(), Failure> {
        match self.stray.first() {
            None => Ok(()),
            Some(first) => Err(Failure::usage(format!(
                "unexpected argument {}: {what} are read on stdin, one a line, not given as arguments",
                crate::quote::quote_os(first),
            ))),
        }
    }
}

/// The runners' shared options and their one rule for CMD: everything
/// after the root (DIR, INITRD) that is not one of the runner's options
/// is CMD and its arguments; a `--` before CMD is allowed, not needed
/// (`chrootrun DIR sh -c x`, `kvmrun IMG -- sh -c x`), as for `env(1)`
/// and `docker run IMAGE CMD`. Flattened after the root positional.
#[derive(clap::Args, Debug, Clone)]
pub struct RunnerArgs {
    /// After SECS seconds stop CMD (and everything it started) and exit
    /// 124, as timeout(1) (decimals allowed; 0: no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// The command and its arguments (default: /init in the root); the
    /// options of CMD are its own, and a `--` before CMD is optional.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

impl RunnerArgs {
    /// `--timeout`, with 0 meaning none.
    pub fn limit(&self) -> Option<Duration> {
        self.timeout.filter(|t| !t.is_zero())
    }
}

/// Parses `--timeout`: seconds, decimals allowed, at most 10^9; 0 means no
/// limit, as for `timeout(1)`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("--timeout wants a number of seconds, not {s:?}"))?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!(
            "--timeout wants a number of seconds from 0 to 1e9, not {s:?}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_numeric_pairs() {
        assert_eq!(parse_owner("0:0"), Ok(Owner { uid: 0, gid: 0 }));
        for bad in ["root:root", "1", ":1", "1:", "+1:1", "4294967296:0"] {
            assert!(parse_owner(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["-1", "5s", "inf", "nan", "2e9"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
