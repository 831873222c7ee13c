//! SIGTERM to the runners: after `chrootrun` or
//! `kvmrun` is told to stop, nothing it started may survive (no process
//! of the container, no qemu) and its temporary files are gone. Each run
//! gets its own TMPDIR and a unique marker in the command line, so
//! processes of other test runs on the machine are never mistaken for ours.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reliability_tests::{skip, tool};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// PIDs whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push((pid, text));
            }
        }
    }
    found
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits up to `limit` for every process carrying `marker` to go.
fn survivors(marker: &str, limit: Duration) -> Vec<(u32, String)> {
    let start = Instant::now();
    loop {
        let left = processes_with(marker);
        if left.is_empty() || start.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_all(found: &[(u32, String)]) {
    for (pid, _) in found {
        let _ = kill(Pid::from_raw(*pid as libc::pid_t), Signal::SIGKILL);
    }
}

fn sigterm(child: &Child) {
    let _ = kill(Pid::from_raw(child.id() as libc::pid_t), Signal::SIGTERM);
}

fn busybox_tree(dir: &Path) -> bool {
    if !Path::new("/bin/busybox").is_file() {
        skip("needs /bin/busybox (busybox-static)");
        return false;
    }
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("proc")).unwrap();
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    true
}

fn empty_dir(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn chrootrun_sigterm_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    if !busybox_tree(&root) {
        return;
    }
    let tmpdir = tmp.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let mut failures = Vec::new();
    // With `--proc` (the program is PID 1) and with `--timeout` (a small
    // init is PID 1): every run has a PID namespace now, so in both modes
    // nothing the program started survives it (README, chrootrun).
    for proc_ns in [true, false] {
        // A distinctive sleep length is the marker; the script spells it
        // in two pieces so that only the sleeps' own command lines hold it.
        let head = 900_000 + std::process::id() % 1000;
        let tail = 10 + u32::from(proc_ns);
        let marker = format!("sleep {head}{tail}");
        let script = format!(
            "h={head}; /bin/busybox sleep ${{h}}{tail} & /bin/busybox sleep ${{h}}{tail} & wait"
        );
        let mut cmd = tool("chrootrun");
        // --dev: a background job's stdin is /dev/null.
        cmd.arg("--dev");
        if proc_ns {
            cmd.arg("--proc");
        } else {
            cmd.args(["--timeout", "600"]);
        }
        let mut child = cmd
            .arg(&root)
            .args(["/bin/busybox", "sh", "-c", &script])
            .env("TMPDIR", &tmpdir)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // Let the container start its children.
        let start = Instant::now();
        while processes_with(&marker).len() < 2 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        sigterm(&child);
        let status = wait_timeout(&mut child, Duration::from_secs(10));
        let left = survivors(&marker, Duration::from_secs(3));
        eprintln!("chrootrun (--proc: {proc_ns}) after SIGTERM: {status:?}, survivors {left:?}");
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            failures.push(format!(
                "--proc {proc_ns}: chrootrun still running 10 s after SIGTERM"
            ));
        }
        if !left.is_empty() {
            failures.push(format!("--proc {proc_ns}: processes left: {left:?}"));
            kill_all(&left);
        }
        if let Some(st) = status {
            use std::os::unix::process::ExitStatusExt;
            // 143 (128+SIGTERM, as kvmrun gives) or 137 (128+SIGKILL:
            // chrootrun kills a --proc namespace with SIGKILL and reports
            // how its PID 1 died); a 0 would hide the stop.
            let code = st.code();
            if !(code == Some(143) || code == Some(137) || st.signal() == Some(libc::SIGTERM)) {
                failures.push(format!(
                    "--proc {proc_ns}: exit {st:?}, expected 143 (128+SIGTERM) or 137"
                ));
            }
        }
        let files = empty_dir(&tmpdir);
        if !files.is_empty() {
            failures.push(format!("--proc {proc_ns}: temp files left: {files:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn kernel() -> Option<String> {
    let mut ks: Vec<String> = fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains("vmlinuz-"))
        .collect();
    ks.sort();
    ks.pop()
}

#[test]
fn kvmrun_sigterm_leaves_no_qemu_and_no_temp_file() {
    let Some(_kernel) = kernel() else {
        skip("no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    };
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("qemu-system-x86_64 is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    if !busybox_tree(&root) {
        return;
    }
    let initrd = tmp.path().join("sleep.initrd");
    let out = tool("mkinitrd")
        .arg("-C")
        .arg(&root)
        .args(["--owner", "0:0"])
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&initrd).unwrap())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b".\n./bin\n./bin/busybox\n./proc\n")?;
            c.wait()
        })
        .unwrap();
    assert!(out.success(), "mkinitrd failed");
    let tmpdir = tmp.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let marker = format!("reliability_sigterm_{}", std::process::id());
    let mut child = tool("kvmrun")
        .args(["--accel", "tcg", "--append", &marker])
        .arg(&initrd)
        .args(["--", "/bin/busybox", "sleep", "1000"])
        .env("TMPDIR", &tmpdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for qemu to be running, then a little more for the boot to begin.
    let start = Instant::now();
    while processes_with(&marker).len() < 2 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let running = processes_with(&marker);
    std::thread::sleep(Duration::from_secs(2));
    sigterm(&child);
    let status = wait_timeout(&mut child, Duration::from_secs(15));
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().ok();
    let stderr = output
        .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
        .unwrap_or_default();
    let left = survivors(&marker, Duration::from_secs(5));
    let files = empty_dir(&tmpdir);
    eprintln!(
        "kvmrun after SIGTERM: {status:?}, was running {running:?}, survivors {left:?}, temp files {files:?}, stderr {stderr:?}"
    );
    kill_all(&left);
    assert!(
        running.iter().any(|(_, c)| c.contains("qemu")),
        "qemu never started"
    );
    assert!(status.is_some(), "kvmrun still running 15 s after SIGTERM");
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(files.is_empty(), "temp files left: {files:?}");
}
