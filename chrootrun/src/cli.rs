//! The command line, as a clap derive struct whose doc comments are the
//! help text. Values clap cannot check by type (`K=V`, `SRC:DST`) are split
//! in [`crate::Options::from_cli`] so that their errors name the value.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// Run CMD (default /init) as root in new user, mount, PID, UTS and IPC
/// namespaces whose root is an overlay over DIR (pivot_root, not chroot). Exit codes: CMD's own; 125
/// chrootrun failed; 126 CMD cannot execute; 127 CMD not found; 128+N killed
/// by signal N; 124 --timeout fired.
#[derive(Debug, Parser)]
#[command(name = "chrootrun", version)]
pub struct Cli {
    /// Mount /proc (OCI masked and read-only paths applied); CMD runs as
    /// PID 1 of the PID namespace (there is one on every run).
    #[arg(long)]
    pub proc: bool,
    /// Minimal /dev: a tmpfs with null, zero, full, random, urandom, tty bound from the host.
    #[arg(long)]
    pub dev: bool,
    /// Mount an empty tmpfs on PATH inside the container.
    #[arg(long, value_name = "PATH")]
    pub tmpfs: Vec<PathBuf>,
    /// Bind the host's SRC onto DST inside the container (SRC alone: the same path).
    #[arg(long, value_name = "SRC:DST")]
    pub bind: Vec<OsString>,
    /// As --bind, read-only (submounts too).
    #[arg(long = "ro-bind", value_name = "SRC:DST")]
    pub ro_bind: Vec<OsString>,
    /// Make the container's root read-only.
    #[arg(long)]
    pub ro: bool,
    /// Make the program's writes to DIR persist (DIR itself is the root,
    /// not an overlay over it; mount points must then exist in DIR).
    #[arg(long)]
    pub rw: bool,
    /// Root caller: map the container's ids to the caller's own, without
    /// idmapped mounts. UNSAFE: the program is then host root.
    #[arg(long = "host-root")]
    pub host_root: bool,
    /// Ordinary caller: map the caller's subordinate ids (/etc/subuid,
    /// /etc/subgid) as ids 1 and up, with newuidmap/newgidmap.
    #[arg(long = "map-users")]
    pub map_users: bool,
    /// Give the program this capability too (repeatable; SYS_ADMIN lets it
    /// undo read-only mounts and /proc masks).
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parse_cap)]
    pub cap_add: Vec<rustix::thread::CapabilitySet>,
    /// Take this capability (or ALL) from the program's default set
    /// (Docker's).
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = parse_cap)]
    pub cap_drop: Vec<rustix::thread::CapabilitySet>,
    /// New network namespace with only the loopback interface, up.
    #[arg(long)]
    pub net: bool,
    /// New UTS namespace with this host name.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<OsString>,
    /// Set K=V in CMD's environment (repeatable).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<OsString>,
    /// Start from an empty environment, without the default PATH, HOME
    /// and TERM (--env still applies).
    #[arg(long)]
    pub clearenv: bool,
    /// Working directory inside the container (default /).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// The container's root directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// `--timeout` and CMD (resolved inside DIR), as kvmrun takes them.
    #[command(flatten)]
    pub runner: filtertool::args::RunnerArgs,
}

impl Cli {
    /// How many bind mounts were asked for (each travels as one fd).
    pub fn mount_count(&self) -> usize {
        self.bind.len() + self.ro_bind.len()
    }
}

fn parse_cap(s: &str) -> Result<rustix::thread::CapabilitySet, String> {
    crate::caps::parse(s).ok_or_else(|| format!("'{s}' is not a capability name (e.g. SYS_PTRACE)"))
}
