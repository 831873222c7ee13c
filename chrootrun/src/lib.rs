//! `chrootrun`: run a container tree as root in new user, mount, PID, UTS
//! and IPC namespaces, with an overlay over the tree made the root by
//! `pivot_root`, so that the program inside reaches nothing of the host's
//! whoever starts it.
//!
//! Two processes (three without `--proc`), and why:
//!
//! ```text
//! chrootrun  (stays in the host's namespaces: opens DIR once, writes the
//!   │         child's id maps, for a root caller clones and idmaps DIR and
//!   │         the bind sources, sends them over a socket; then waits,
//!   │         forwards signals, enforces --timeout; not dumpable)
//!   └─ child, born by clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|…), PID 1:
//!      becomes root, setsid, mounts, pivot_root, drops capabilities and
//!      execs CMD (--proc) — or stays as a tiny init that forks CMD
//! ```
//!
//! The parent writes the maps because a map of more than the caller's own
//! id can only be written from the parent namespace, and it makes a root
//! caller's idmapped mounts because mount_setattr(MOUNT_ATTR_IDMAP) needs
//! CAP_SYS_ADMIN in the user namespace that owns the filesystem: the
//! host's. It stays outside so nothing the container can reach holds the
//! host's tree.
//!
//! How each attack on the host is made impossible:
//! - a root caller's program never is host uid 0: the container maps to
//!   root's /etc/subuid range or [`userns::FALLBACK`], and DIR keeps its
//!   on-disk owners through an idmapped mount (`supervise.rs`);
//! - files it makes in a `--bind` belong to its remapped ids (a writable
//!   bind is not idmapped, so the host's root is none of the container's
//!   ids and nothing can be chowned to it), and every mount is nosuid, nodev;
//! - DIR is opened once with `O_PATH|O_DIRECTORY|O_NOFOLLOW` and only that
//!   descriptor is used after (`setup.rs`), and it is never written: the
//!   root is an overlay whose upper layer is a tmpfs (`--rw` aside);
//! - a PID namespace always; a session of its own (TIOCSTI);
//! - /proc's OCI masked and read-only paths, and no CAP_SYS_ADMIN for the
//!   program, so read-only mounts stay so (`caps.rs`);
//! - the environment is Docker's defaults plus TERM and --env.

pub mod caps;
pub mod cli;
pub mod execute;
pub mod fds;
pub mod inroot;
pub mod kernel;
pub mod setup;
pub mod supervise;
pub mod userns;

use std::ffi::{CString, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use filtertool::exit::RUNNER_FAILED;
use filtertool::fail;
use filtertool::quote::quote_path;

use crate::cli::Cli;
use crate::execute::Program;
use crate::setup::{Mount, Plan};

pub const TOOL: &str = "chrootrun";

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::runner(TOOL);

/// Everything a run needs, checked before any namespace exists.
#[derive(Debug, Clone)]
pub struct Options {
    /// DIR as the user named it (opened once, without following a symlink).
    pub root: PathBuf,
    pub plan: Plan,
    pub host_root: bool,
    pub map_users: bool,
    /// The capabilities the program keeps.
    pub caps: rustix::thread::CapabilitySet,
    pub program: Program,
    pub timeout: Option<Duration>,
    /// --proc: the program is PID 1 of a new PID namespace.
    pub proc: bool,
    pub net: bool,
}

/// An io error's reason without Rust's "(os error N)" suffix.
pub(crate) fn reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// An io error as nix's Errno, whose message ("EACCES: Permission
/// denied") has no "(os error N)" suffix, for `.map_err(os)?`.
pub(crate) fn os(e: std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(n) => anyhow::Error::new(nix::errno::Errno::from_raw(n)),
        None => anyhow::Error::new(e),
    }
}

fn usage(msg: String) -> anyhow::Error {
    fail(RUNNER_FAILED, msg)
}

fn cstring(bytes: Vec<u8>, what: &str) -> anyhow::Result<CString> {
    CString::new(bytes).map_err(|_| usage(format!("{what}: holds a NUL byte")))
}

impl Options {
    pub fn from_cli(cli: Cli) -> anyhow::Result<Options> {
        let shown = quote_path(&cli.dir);
        if cli.mount_count() > 250 {
            return Err(usage("more than 250 --bind/--ro-bind options".into()));
        }

        let mut mounts = Vec::new();
        if cli.proc {
            mounts.push(Mount::Proc);
        }
        if cli.dev {
            mounts.push(Mount::Dev);
        }
        for t in cli.tmpfs {
            mounts.push(Mount::Tmpfs(t));
        }
        for (spec, readonly) in cli
            .bind
            .iter()
            .map(|s| (s, false))
            .chain(cli.ro_bind.iter().map(|s| (s, true)))
        {
            let opt = if readonly { "--ro-bind" } else { "--bind" };
            let bytes = spec.as_bytes();
            let (src, dst) = match bytes.iter().position(|&b| b == b':') {
                Some(i) => (&bytes[..i], &bytes[i + 1..]),
                None => (bytes, bytes),
            };
            if src.is_empty() || dst.is_empty() {
                return Err(usage(format!(
                    "{opt} {}: expected SRC:DST",
                    spec.to_string_lossy()
                )));
            }
            let src = Path::new(std::ffi::OsStr::from_bytes(src));
            // Absolute, because the parent enters DIR before it opens the
            // sources; the source is then opened once, by this name.
            let source = fs::canonicalize(src).map_err(|e| {
                fail(
                    RUNNER_FAILED,
                    format!("{opt} {}: {}", quote_path(src), reason(&e)),
                )
            })?;
            let target = PathBuf::from(std::ffi::OsStr::from_bytes(dst));
            mounts.push(Mount::Bind {
                source,
                target,
                readonly,
                shown: format!("{opt} {}", quote_path(src)),
            });
        }
        setup::sort_mounts(&mut mounts);

        if let Some(h) = &cli.hostname {
            if h.is_empty() || h.len() > 64 {
                return Err(usage(format!(
                    "--hostname '{}': must be 1 to 64 bytes",
                    h.to_string_lossy()
                )));
            }
        }

        // The environment is the container's, not the host's: Docker's
        // defaults (PATH, HOME=/root) and the caller's TERM, which says
        // what the terminal understands; then --env in order.
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        if !cli.clearenv {
            env.push(("PATH".into(), execute::DEFAULT_PATH.into()));
            env.push(("HOME".into(), "/root".into()));
            if let Some(term) = std::env::var_os("TERM") {
                env.push(("TERM".into(), term));
            }
        }
        for kv in &cli.env {
            let b = kv.as_bytes();
            let Some(i) = b.iter().position(|&c| c == b'=').filter(|&i| i > 0) else {
                return Err(usage(format!(
                    "--env {}: expected K=V",
                    kv.to_string_lossy()
                )));
            };
            let (k, v) = (
                OsString::from_vec(b[..i].to_vec()),
                OsString::from_vec(b[i + 1..].to_vec()),
            );
            match env.iter_mut().find(|(ek, _)| *ek == k) {
                Some(slot) => slot.1 = v,
                None => env.push((k, v)),
            }
        }
        let path = env.iter().find(|(k, _)| k == "PATH").map_or_else(
            || execute::DEFAULT_PATH.as_bytes().to_vec(),
            |(_, v)| v.as_bytes().to_vec(),
        );
        let env = env
            .into_iter()
            .map(|(k, v)| {
                let mut b = k.into_vec();
                b.push(b'=');
                b.extend(v.into_vec());
                cstring(b, "an environment variable")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let timeout = cli.runner.limit();
        let command = if cli.runner.command.is_empty() {
            vec![OsString::from("/init")]
        } else {
            cli.runner.command
        };
        let argv = command
            .into_iter()
            .map(|a| cstring(a.into_vec(), "an argument"))
            .collect::<anyhow::Result<Vec<_>>>()?;

        Ok(Options {
            root: cli.dir,
            host_root: cli.host_root,
            map_users: cli.map_users,
            caps: caps::resolve(&cli.cap_add, &cli.cap_drop),
            plan: Plan {
                mounts,
                readonly_root: cli.ro,
                rw: cli.rw,
                hostname: cli.hostname,
                loopback: cli.net,
                cwd: cli.cwd.unwrap_or_else(|| PathBuf::from("/")),
            },
            program: Program {
                argv,
                env,
                path,
                dir: shown,
            },
            timeout,
            proc: cli.proc,
            net: cli.net,
        })
    }
}

/// Runs the container; returns the exit code to pass on.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let opts = Options::from_cli(cli)?;
    supervise::run(&opts)
}
