//! Support code for the workspace-wide scale, fault and security tests
//! (issue 8): finding the tools' binaries, running a tool with its stdout
//! closed, and measuring a child's peak RSS with `wait4` rather than
//! trusting the tool's own account of its memory.

pub mod parsers;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// Which crate builds each binary the tests run.
const PACKAGES: &[(&str, &str)] = &[
    ("fileids", "fileids"),
    ("layerdiff", "layerdiff"),
    ("mkinitrd", "mkinitrd"),
    ("dockpack", "dockpack"),
    ("elfdeps", "elfdeps"),
    ("chrootrun", "chrootrun"),
    ("kvmrun", "kvmrun"),
];

/// Serialises the fallback `cargo build`s of parallel tests.
static BUILD: Mutex<()> = Mutex::new(());

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// `target/<profile>` of the running test executable
/// (`target/<profile>/deps/NAME-HASH`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("own executable path: {e}"));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{}: not under target/PROFILE/deps", exe.display()))
}

/// The path of tool `name`, built next to the test executable. CI builds
/// every binary first (`scripts/test.sh`); a bare `cargo test -p
/// reliability-tests` builds the missing one here, once.
pub fn bin(name: &str) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(name);
    if path.is_file() {
        return path;
    }
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if path.is_file() {
        return path;
    }
    let package = PACKAGES
        .iter()
        .find(|(b, _)| *b == name)
        .map(|(_, p)| *p)
        .unwrap_or(name);
    let target = dir.parent().unwrap_or(&dir).to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--bins", "-p", package])
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", &target);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
    assert!(
        status.success() && path.is_file(),
        "{name} is missing from {} and `cargo build --bins -p {package}` did not make it ({status})",
        dir.display()
    );
    path
}

/// Runs `cmd` with `stdin` fed from a thread (so a tool that writes
/// before it has read everything cannot deadlock), capturing its output.
pub fn run(mut cmd: Command, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("waiting for the tool");
    let _ = feeder.join();
    out
}

/// A `Command` for tool `name`.
pub fn tool(name: &str) -> Command {
    Command::new(bin(name))
}

/// True when the tests run as root (needed for mounts and device nodes).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What a child left behind.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stderr: String,
    /// Peak resident set size in KiB (`ru_maxrss` from `wait4`).
    pub max_rss_kib: i64,
}

/// Waits for `child` with `wait4`, collecting its exit status and peak
/// RSS. The caller must have taken stdout/stdin already; stderr, if
/// piped, is read here.
pub fn wait_rusage(mut child: Child) -> Outcome {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value for this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unwaited child; the pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        assert!(
            err.kind() == io::ErrorKind::Interrupted,
            "wait4({pid}): {err}"
        );
    }
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        status: ExitStatus::from_raw(status),
        stderr,
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Runs `cmd` with `input` on stdin and its stdout read `keep` bytes then
/// closed (`| head -c KEEP`), as a reader that stops early does. Returns
/// how the tool ended.
pub fn run_stdout_closed(mut cmd: Command, input: Vec<u8>, keep: usize) -> Outcome {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdout = Some(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    if keep == 0 {
        drop(stdout.take());
    }
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let writer = std::thread::spawn(move || {
        // The tool may stop reading once its stdout is gone: EPIPE here is fine.
        let _ = stdin.write_all(&input);
    });
    if let Some(mut out) = stdout {
        let mut buf = vec![0u8; keep];
        let _ = out.read_exact(&mut buf);
    }
    let out = wait_rusage(child);
    let _ = writer.join();
    out
}

/// Runs `cmd` with stdin fed by `feed` on a thread and stdout consumed by
/// `sink` on this thread; returns the outcome with peak RSS.
pub fn run_streaming<F, S>(mut cmd: Command, feed: F, sink: S) -> Outcome
where
    F: FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
    S: FnOnce(&mut dyn Read),
{
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let writer = std::thread::spawn(move || {
        let mut w = io::BufWriter::with_capacity(1 << 16, &mut stdin);
        let r = feed(&mut w).and_then(|()| w.flush());
        drop(w);
        drop(stdin);
        r
    });
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    sink(&mut stdout);
    // Drain whatever the sink left so the child never blocks on a full pipe.
    let _ = io::copy(&mut stdout, &mut io::sink());
    drop(stdout);
    let mut out = wait_rusage(child);
    out.stderr = errs.join().unwrap_or_default();
    if let Ok(Err(e)) = writer.join() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            panic!("feeding stdin: {e}");
        }
    }
    out
}

/// Counts the bytes and the LF-terminated lines of `r` without keeping them.
pub fn count(r: &mut dyn Read) -> (u64, u64) {
    let mut buf = vec![0u8; 1 << 16];
    let (mut bytes, mut lines) = (0u64, 0u64);
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading tool output: {e}"),
        }
    }
    (bytes, lines)
}

/// Lowercase hex SHA-256 of `data`, via `sha256sum` so the tests do not
/// share the tools' own hashing code.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sha256sum: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    stdin
        .write_all(data)
        .unwrap_or_else(|e| panic!("sha256sum stdin: {e}"));
    drop(stdin);
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("sha256sum: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// xorshift64*: a deterministic generator for the mutation tests, so a
/// failure reproduces from its seed. Seed with an odd number.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}
