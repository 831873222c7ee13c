//! Running a program the way a pipeline does: stdin fed from a thread (so
//! a tool that writes before it has read everything cannot deadlock),
//! stdout closed early (`| head`), and the child's peak RSS measured with
//! `wait4` rather than trusting the tool's own account of its memory.

use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// Runs `cmd` with `stdin` on its standard input, capturing its output.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let (child, feeder) = spawn_fed(&mut cmd, stdin);
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    let _ = feeder.join();
    out
}

/// Spawns `cmd` with piped stdin, stdout and stderr, and a thread that
/// feeds it `stdin`. A tool may stop reading early (an error, a closed
/// stdout): EPIPE on its stdin is its business, not the test's.
fn spawn_fed(cmd: &mut Command, stdin: &[u8]) -> (Child, std::thread::JoinHandle<()>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    (child, feeder)
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
        // SAFETY: pid is our own child, not yet waited for; the pointers
        // are valid for the call. (std's Child has no rusage.)
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
    Outcome {
        status: ExitStatus::from_raw(status),
        stderr,
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Runs `cmd` with `input` on stdin and its stdout read `keep` bytes then
/// closed (`| head -c KEEP`), as a reader that stops early does.
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

/// The closed-stdout check: a filter whose reader stops after `keep`
/// bytes exits 0 and says nothing (as `yes | head` does), rather than
/// dying of SIGPIPE or printing a broken-pipe error.
pub fn assert_quiet_when_stdout_closed(cmd: Command, input: Vec<u8>, keep: usize) {
    let what = format!("{cmd:?}");
    let out = run_stdout_closed(cmd, input, keep);
    assert!(
        out.status.code() == Some(0) && out.stderr.is_empty(),
        "{what} with stdout closed after {keep} bytes: {:?}, stderr {:?}",
        out.status,
        out.stderr
    );
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
    let out = run(Command::new("sha256sum"), data);
    assert!(out.status.success(), "sha256sum: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// How a bounded run ended (`run_bounded`).
#[derive(Debug)]
pub struct Bounded {
    pub code: Option<i32>,
    /// Killed for running past the time limit.
    pub hung: bool,
    /// The first `keep` bytes of stdout.
    pub stdout: Vec<u8>,
    /// How many bytes stdout had when reading stopped (at most a buffer
    /// past `max_output`).
    pub out_len: u64,
    /// The first 64 KiB of stderr.
    pub stderr: String,
}

/// Runs `cmd` with `stdin`, reading its output on threads and keeping the
/// first `keep` bytes, and kills it after `limit` (a test must bound how
/// long a tool may run on hostile input). Reading stops past `max_output`
/// bytes, so a tool that writes without end fills its pipe and is killed
/// at `limit` instead of filling memory.
pub fn run_bounded(
    mut cmd: Command,
    stdin: &[u8],
    limit: std::time::Duration,
    max_output: u64,
    keep: usize,
) -> Bounded {
    let (mut child, feeder) = spawn_fed(&mut cmd, stdin);
    let mut out = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let reader = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    if kept.len() < keep {
                        kept.extend_from_slice(&buf[..n.min(keep - kept.len())]);
                    }
                    if total > max_output {
                        break;
                    }
                }
            }
        }
        (kept, total)
    });
    let mut err = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let errs = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut err).take(1 << 16).read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = std::time::Instant::now();
    let mut hung = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > limit => {
                hung = true;
                let _ = child.kill();
                break child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(e) => panic!("wait: {e}"),
        }
    };
    let _ = feeder.join();
    let (stdout, out_len) = reader.join().unwrap_or_default();
    Bounded {
        code: status.code(),
        hung,
        stdout,
        out_len,
        stderr: errs.join().unwrap_or_default(),
    }
}
