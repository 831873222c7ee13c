//! kvmrun against inputs that used to hang it or boot garbage: a FIFO as
//! kernel or initrd, `-` on a stdin that never writes or writes slowly,
//! special files, an initrd larger than the VM, and a file that is no
//! initramfs at all. All of these are refused or stopped before qemu
//! starts (so `--qemu` points nowhere: reaching qemu would be a different
//! error), within their bound, with one line naming the culprit, the
//! documented exit code and no `kvmrun-*` left in TMPDIR. One boot, when
//! qemu and a kernel are here, checks that the console line that says why
//! the guest died comes first.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use testkit::{is_root, skip};

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
}

/// A scratch directory with a TMPDIR inside it and a fake kernel (a
/// regular file: the kernel is only opened and checked before qemu).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        fs::write(dir.path().join("vmlinuz"), b"not really a kernel").unwrap();
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes the directory usable by `uid` too.
    fn give_to(&self, uid: u32) {
        for p in [self.dir.path().to_path_buf(), self.path("tmp")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        }
    }

    /// kvmrun with this TMPDIR, the fake kernel and no usable qemu.
    fn kvmrun(&self, as_user: Option<u32>) -> Command {
        let bin = assert_cmd::cargo::cargo_bin("kvmrun");
        let mut c = match as_user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        c.env("TMPDIR", self.path("tmp"))
            .env_remove("KVMRUN_KERNEL")
            .arg("--kernel")
            .arg(self.path("vmlinuz"))
            .args(["--accel", "tcg", "--qemu", "/nonexistent/qemu"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn leftovers(&self) -> Vec<String> {
        fs::read_dir(self.path("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// Waits for `child` at most `limit`; kills it and fails if it overruns.
fn wait_bounded(child: &mut Child, limit: Duration) -> (ExitStatus, String, Duration) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = (&mut e).take(1 << 20).read_to_string(&mut err);
            }
            return (st, err, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kvmrun ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn one_line(err: &str) -> &str {
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("kvmrun: "), "{err}");
    err.trim_end()
}

#[test]
fn a_fifo_kernel_or_initrd_is_refused_at_once() {
    let s = Scratch::new();
    let fifo = s.path("fifo");
    mkfifo(&fifo);
    // As the kernel: a scratch whose kernel is a FIFO.
    let k = Scratch::new();
    fs::remove_file(k.path("vmlinuz")).unwrap();
    mkfifo(&k.path("vmlinuz"));
    let fifo_kernel = k.path("vmlinuz");
    let mut c = k.kvmrun(None);
    c.arg(s.path("vmlinuz"));
    let mut child = c.stdin(Stdio::null()).spawn().unwrap();
    let (st, err, took) = wait_bounded(&mut child, Duration::from_secs(10));
    let line = one_line(&err);
    assert_eq!(st.code(), Some(125), "{line}");
    assert!(
        line.contains(&format!("kernel {:?}", fifo_kernel.to_str().unwrap())),
        "{line}"
    );
    assert!(line.contains("it is a FIFO"), "{line}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // As the initrd; and /dev/zero, and a directory.
    for (initrd, what) in [
        (fifo.clone(), "a FIFO"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (s.path("tmp"), "a directory"),
    ] {
        let mut child = s
            .kvmrun(None)
            .arg(&initrd)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let (st, err, took) = wait_bounded(&mut child, Duration::from_secs(10));
        let line = one_line(&err);
        assert_eq!(st.code(), Some(125), "{line}");
        assert!(
            line.contains(&format!(
                "initrd {:?}: not a regular file",
                initrd.to_str().unwrap()
            )),
            "{line}"
        );
        assert!(line.contains(what), "{line}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn stdin_that_is_a_device_is_refused() {
    let s = Scratch::new();
    let zero = fs::File::open("/dev/zero").unwrap();
    let mut child = s.kvmrun(None).arg("-").stdin(zero).spawn().unwrap();
    let (st, err, _) = wait_bounded(&mut child, Duration::from_secs(10));
    let line = one_line(&err);
    assert_eq!(st.code(), Some(125), "{line}");
    assert!(
        line.contains(
            "initrd \"-\": stdin is not a pipe or a regular file (it is a character device)"
        ),
        "{line}"
    );
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// `-` on a pipe: `first` is written at once, then nothing; `signal` is
/// sent after a pause. Returns kvmrun's status, stderr and how long it
/// took to end after the signal.
fn signal_during_copy(
    as_user: Option<u32>,
    first: &[u8],
    signal: libc::c_int,
) -> (ExitStatus, String, Duration, Vec<String>) {
    let s = Scratch::new();
    if let Some(uid) = as_user {
        s.give_to(uid);
    }
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(first).unwrap();
    let mut child = s.kvmrun(as_user).arg("-").stdin(reader).spawn().unwrap();
    // Let it get into the copy (through setpriv too), then signal it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "kvmrun ended early");
    let pid = nix::unistd::Pid::from_raw(child.id() as libc::pid_t);
    let signal = nix::sys::signal::Signal::try_from(signal).unwrap();
    nix::sys::signal::kill(pid, signal).unwrap();
    let (st, err, took) = wait_bounded(&mut child, Duration::from_secs(5));
    drop(writer);
    (st, err, took, s.leftovers())
}

#[test]
fn sigterm_during_a_copy_from_a_silent_stdin_ends_kvmrun() {
    // Nothing written at all, and a slow writer stuck after the magic.
    for first in [&b""[..], b"070701000000"] {
        let (st, err, took, left) = signal_during_copy(None, first, libc::SIGTERM);
        let line = one_line(&err);
        assert_eq!(st.code(), Some(143), "{line}");
        assert!(line.contains("stopped by signal 15"), "{line}");
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert_eq!(left, Vec::<String>::new(), "TMPDIR left behind");
    }
    let (st, err, took, left) = signal_during_copy(None, b"", libc::SIGINT);
    assert_eq!(st.code(), Some(130), "{err}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(left.is_empty());
}

#[test]
fn sigterm_during_a_copy_as_an_ordinary_user() {
    if !is_root() {
        skip("needs root to switch to uid 65534 (the test above runs as this user)");
        return;
    }
    if !testkit::runs_as_nobody(&assert_cmd::cargo::cargo_bin("kvmrun")) {
        skip("setpriv or the kvmrun binary is not usable as uid 65534");
        return;
    }
    // setpriv execs kvmrun in place, so the signal reaches kvmrun itself.
    let (st, err, took, left) = signal_during_copy(Some(65534), b"0707", libc::SIGTERM);
    let line = one_line(&err);
    assert_eq!(st.code(), Some(143), "{line}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn timeout_counts_the_time_spent_reading_stdin() {
    let s = Scratch::new();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = s
        .kvmrun(None)
        .args(["--timeout", "0.5", "-"])
        .stdin(reader)
        .spawn()
        .unwrap();
    let (st, err, took) = wait_bounded(&mut child, Duration::from_secs(10));
    drop(writer);
    let line = one_line(&err);
    assert_eq!(st.code(), Some(124), "{line}");
    assert!(line.contains("timed out after 0.5 s"), "{line}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn stdin_larger_than_the_vm_is_refused() {
    let s = Scratch::new();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let mut child = s
        .kvmrun(None)
        .args(["--mem", "16M", "-"])
        .stdin(reader)
        .spawn()
        .unwrap();
    // A gzip magic, then zeros: at most 32 MiB, until kvmrun hangs up.
    let feeder = std::thread::spawn(move || {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[..2].copy_from_slice(&[0x1f, 0x8b]);
        for _ in 0..32 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
            chunk[..2].copy_from_slice(&[0, 0]);
        }
    });
    let (st, err, _) = wait_bounded(&mut child, Duration::from_secs(20));
    feeder.join().unwrap();
    let line = one_line(&err);
    assert_eq!(st.code(), Some(125), "{line}");
    assert!(
        line.contains("initrd \"-\": larger than 16 MiB, the VM's memory (--mem)"),
        "{line}"
    );
    assert_eq!(s.leftovers(), Vec::<String>::new());
    // A regular file is refused by its size, before it is read.
    let big = s.path("big.initrd");
    let f = fs::File::create(&big).unwrap();
    f.set_len(17 << 20).unwrap();
    let mut child = s
        .kvmrun(None)
        .args(["--mem", "16M"])
        .arg(&big)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (st, err, _) = wait_bounded(&mut child, Duration::from_secs(10));
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(err.contains("big.initrd\": larger than 16 MiB"), "{err}");
}

#[test]
fn a_file_list_is_not_an_initrd() {
    let s = Scratch::new();
    let list = s.path("small.list");
    fs::write(
        &list,
        b"./bin 0040755-0-0-0\n./bin/hello 0100755-0-0-22e4d2865e654f830f6bfc146e170846dde15185be675db4e9cd987cb02afa78\n",
    )
    .unwrap();
    let mut child = s
        .kvmrun(None)
        .arg(&list)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (st, err, took) = wait_bounded(&mut child, Duration::from_secs(10));
    let line = one_line(&err);
    assert_eq!(st.code(), Some(125), "{line}");
    assert!(
        line.contains("small.list\": not an initramfs: it starts with \"./bin \""),
        "{line}"
    );
    assert!(line.contains("newc cpio archive (070701)"), "{line}");
    assert!(took < Duration::from_secs(2));
    // The same on stdin, and an empty file, and NULs only.
    for (name, bytes, want) in [
        (
            "stdin",
            &b"./bin 0040755-0-0-0\n"[..],
            "it starts with \"./bin \"",
        ),
        ("empty", b"", "it is empty"),
        ("nuls", &[0u8; 4096][..], "it is empty (or only NUL bytes)"),
    ] {
        let mut c = s.kvmrun(None);
        let mut child = if name == "stdin" {
            let (reader, mut writer) = std::io::pipe().unwrap();
            writer.write_all(bytes).unwrap();
            drop(writer);
            c.arg("-").stdin(reader).spawn().unwrap()
        } else {
            let p = s.path(name);
            fs::write(&p, bytes).unwrap();
            c.arg(&p).stdin(Stdio::null()).spawn().unwrap()
        };
        let (st, err, _) = wait_bounded(&mut child, Duration::from_secs(10));
        assert_eq!(st.code(), Some(125), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// The one boot: an initrd that starts like gzip but is junk. The kernel
/// says "Initramfs unpacking failed: …", cannot find our init, panics,
/// and the message must say the unpacking failed first.
#[test]
fn the_reason_the_guest_died_comes_first() {
    let qemu = format!("qemu-system-{}", std::env::consts::ARCH);
    if Command::new(&qemu).arg("--version").output().is_err() {
        skip(format!("{qemu} is not installed"));
        return;
    }
    let kernel = fs::read_dir("/boot").ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("/vmlinuz-"))
    });
    let Some(kernel) = kernel else {
        skip("no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    };
    let s = Scratch::new();
    let junk = s.path("junk.initrd");
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00];
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    fs::write(&junk, &bytes).unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kvmrun"))
        .env("TMPDIR", s.path("tmp"))
        .env_remove("KVMRUN_KERNEL")
        .arg("--kernel")
        .arg(&kernel)
        // --mem: the junk cannot be measured, and need not be.
        .args(["--accel", "tcg", "--timeout", "90", "--mem", "256M"])
        .arg(&junk)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (st, err, _) = wait_bounded(&mut child, Duration::from_secs(120));
    let line = err
        .lines()
        .rfind(|l| l.starts_with("kvmrun: "))
        .unwrap_or_else(|| panic!("no kvmrun message: {err}"));
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(
        line.starts_with("kvmrun: the guest kernel said \"")
            && line.contains("Initramfs unpacking failed"),
        "{line}"
    );
    assert_eq!(s.leftovers(), Vec::<String>::new());
}
