//! Security: the packers refuse names that
//! would unpack outside the root or read outside the tree; a hostile ELF
//! cannot make `elfdeps` resolve outside `--root`; `chrootrun` leaves no
//! host path reachable through `/proc/1/root` or an inherited fd.

use reliability_tests::{run, sha256_hex, tool};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

const SECRET: &[u8] = b"host secret that must not reach an archive\n";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs `packer` over every case of `group` ("climb" or "symlink") and
/// returns what was not refused cleanly or leaked host data.
fn packer_failures(packer: &str, group: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).unwrap();
    // Beside the tree, reachable only by climbing out of it.
    fs::write(tmp.path().join("outside"), SECRET).unwrap();
    fs::create_dir(tmp.path().join("hostdir")).unwrap();
    fs::write(tmp.path().join("hostdir/secret"), SECRET).unwrap();
    fs::write(tree.join("ok"), b"fine\n").unwrap();
    // Symlink-then-file: the link is legitimate content, the name
    // through it is not.
    symlink(tmp.path().join("hostdir"), tree.join("abs")).unwrap();
    symlink("../hostdir", tree.join("rel")).unwrap();
    let etc_passwd = fs::read("/etc/passwd").unwrap();
    let secret_sum = sha256_hex(SECRET);
    let line = |name: &str, mode: &str, digest: &str| format!("{name} {mode}-0-0-{digest}\n");
    let abs_target = tmp.path().join("hostdir").display().to_string();
    let cases: Vec<(&str, &str, String)> = vec![
        ("climb", "dot-dot", "./ok\n./../outside\n".into()),
        (
            "climb",
            "inner dot-dot",
            "./ok\n./abs/../../outside\n".into(),
        ),
        (
            "climb",
            "absolute",
            format!("./ok\n{}\n", tmp.path().join("outside").display()),
        ),
        (
            "climb",
            "absolute /etc/passwd",
            "./ok\n/etc/passwd\n".into(),
        ),
        (
            "symlink",
            "absolute symlink then file",
            "./abs\n./abs/secret\n".into(),
        ),
        (
            "symlink",
            "relative symlink then file",
            "./rel\n./rel/secret\n".into(),
        ),
        (
            "climb",
            "list line: dot-dot",
            line("./../outside", "0100644", &secret_sum),
        ),
        (
            "symlink",
            "list line: symlink then file, digests matching the host",
            line("./abs", "0120777", &sha256_hex(abs_target.as_bytes()))
                + &line("./abs/secret", "0100644", &secret_sum),
        ),
        (
            "symlink",
            "list line: /etc via symlink",
            line("./etc", "0120777", &sha256_hex(b"/etc"))
                + &line("./etc/passwd", "0100644", &sha256_hex(&etc_passwd)),
        ),
    ];
    symlink("/etc", tree.join("etc")).unwrap();
    let mut failures = Vec::new();
    {
        for (_, label, input) in cases.iter().filter(|c| c.0 == group) {
            let mut cmd = if packer == "mkinitrd" {
                tool("mkinitrd")
            } else {
                let mut c = tool("dockpack");
                c.arg("layer");
                c
            };
            cmd.arg("-C").arg(&tree);
            let out = run(cmd, input.as_bytes());
            let stderr = String::from_utf8_lossy(&out.stderr);
            let leaked = contains(&out.stdout, SECRET)
                || (!etc_passwd.is_empty() && contains(&out.stdout, &etc_passwd));
            eprintln!(
                "{packer}, {label}: {:?}, leaked: {leaked}, stderr {stderr:?}",
                out.status
            );
            if out.status.code() != Some(1) || leaked || stderr.lines().count() != 1 {
                failures.push(format!(
                    "{packer}, {label}: input {input:?}: {:?}, host data in the archive: {leaked}, stderr {stderr:?}",
                    out.status
                ));
            }
        }
    }
    failures
}

#[test]
fn packers_refuse_absolute_and_dot_dot_names() {
    let mut failures = packer_failures("mkinitrd", "climb");
    failures.extend(packer_failures("dockpack layer", "climb"));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn dockpack_layer_refuses_symlink_then_file() {
    let failures = packer_failures("dockpack layer", "symlink");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn mkinitrd_refuses_symlink_then_file() {
    let failures = packer_failures("mkinitrd", "symlink");
    assert!(failures.is_empty(), "{failures:#?}");
}

fn gcc(args: &[&str]) {
    let st = Command::new("gcc")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("gcc: {e}"));
    assert!(st.success(), "gcc {args:?} failed");
}

/// A root holding the host's loader and libc, and programs that need
/// `libhostile.so`, which exists only on the host, reached by tricks.
#[test]
fn hostile_elf_cannot_make_elfdeps_leave_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    let root = tmp.path().join("root");
    fs::create_dir_all(&host).unwrap();
    for d in ["bin", "lib64", "lib/x86_64-linux-gnu", "opt"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        root.join("lib/x86_64-linux-gnu/libc.so.6"),
    )
    .unwrap();
    let h = host.display().to_string();
    fs::write(tmp.path().join("h.c"), "int hostile(void){return 7;}\n").unwrap();
    fs::write(
        tmp.path().join("m.c"),
        "int hostile(void);\nint main(void){return hostile();}\n",
    )
    .unwrap();
    let hc = tmp.path().join("h.c").display().to_string();
    let mc = tmp.path().join("m.c").display().to_string();
    gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        &format!("{h}/libhostile.so"),
        &hc,
        "-Wl,-soname,libhostile.so",
    ]);
    // No soname: a program linked with it by path gets DT_NEEDED = that path.
    gcc(&["-shared", "-fPIC", "-o", &format!("{h}/libpathy.so"), &hc]);
    // The host dir reached through an absolute symlink inside the root.
    symlink(&host, root.join("opt/hostlibs")).unwrap();
    let up = "/..".repeat(12);
    let programs: Vec<(&str, Vec<String>)> = vec![
        (
            "runpath-dotdot",
            vec![format!("-Wl,--enable-new-dtags,-rpath,{up}{h}")],
        ),
        (
            "rpath-dotdot",
            vec![format!("-Wl,--disable-new-dtags,-rpath,{up}{h}")],
        ),
        (
            "runpath-origin",
            vec![format!("-Wl,--enable-new-dtags,-rpath,$ORIGIN{up}{h}")],
        ),
        (
            "runpath-symlink",
            vec!["-Wl,--enable-new-dtags,-rpath,/opt/hostlibs".into()],
        ),
    ];
    for (name, flags) in &programs {
        let out = root.join("bin").join(name);
        let mut args: Vec<String> = vec!["-o".into(), out.display().to_string(), mc.clone()];
        args.extend(flags.iter().cloned());
        args.extend(["-L".into(), h.clone(), "-lhostile".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gcc(&args);
    }
    let pathy = root.join("bin/needed-path").display().to_string();
    gcc(&["-o", &pathy, &mc, &format!("{h}/libpathy.so")]);
    // A symlink in the root to a host program, and an input path that climbs.
    symlink("/usr/bin/true", root.join("bin/hostprog")).unwrap();
    fs::copy(root.join("bin/runpath-dotdot"), host.join("prog")).unwrap();

    let inputs = [
        "/bin/runpath-dotdot".to_string(),
        "/bin/rpath-dotdot".into(),
        "/bin/runpath-origin".into(),
        "/bin/runpath-symlink".into(),
        "/bin/needed-path".into(),
        "/bin/hostprog".into(),
        format!("{up}{h}/prog"),
    ];
    let mut failures = Vec::new();
    for input in &inputs {
        let mut cmd = tool("elfdeps");
        cmd.arg("--root").arg(&root);
        let out = run(cmd, format!("{input}\n").as_bytes());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "elfdeps {input}: {:?}, stdout {stdout:?}, stderr {stderr:?}",
            out.status
        );
        // Every printed path must exist inside the root.
        let outside: Vec<&str> = stdout
            .lines()
            .filter(|p| fs::symlink_metadata(root.join(p.trim_start_matches('/'))).is_err())
            .collect();
        if out.status.success()
            || !outside.is_empty()
            || stdout.contains("hostile")
            || stdout.contains("pathy")
        {
            failures.push(format!(
                "{input}: {:?}, printed {stdout:?} (not in the root: {outside:?})",
                out.status
            ));
        }
        if out.status.code() == Some(101) {
            failures.push(format!("{input}: panic: {stderr}"));
        }
    }
    // The control: the same tricks find the library once it is in the
    // root where the clamped path points, so the tricks are honoured.
    let inside = root.join(h.trim_start_matches('/'));
    fs::create_dir_all(&inside).unwrap();
    fs::copy(host.join("libhostile.so"), inside.join("libhostile.so")).unwrap();
    let mut cmd = tool("elfdeps");
    cmd.arg("--root").arg(&root);
    let out = run(
        cmd,
        b"/bin/runpath-dotdot\n/bin/runpath-origin\n/bin/rpath-dotdot\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "control: {:?} {stdout:?} {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "control failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/libhostile.so"), "control: {stdout:?}");
    assert!(failures.is_empty(), "{failures:#?}");
    let climbing: Vec<&str> = stdout
        .lines()
        .filter(|p| p.split('/').any(|c| c == ".."))
        .collect();
    if !climbing.is_empty() {
        eprintln!(
            "printed paths with '..' (see elfdeps_prints_paths_without_dot_dot): {climbing:?}"
        );
    }
}

/// elfdeps resolves `..` inside the root correctly, but prints the path
/// as spelled in DT_RUNPATH: `/../../tmp/X/libhostile.so`. A consumer
/// that joins that with the root (`cp "$ROOT$p"`, as libs.fs.do does)
/// climbs out of the root on the host. The printed in-tree path should
/// be the normalised one (`/tmp/X/libhostile.so`).
#[test]
fn elfdeps_prints_paths_without_dot_dot() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for d in ["bin", "lib64", "lib/x86_64-linux-gnu", "opt/l"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        root.join("lib/x86_64-linux-gnu/libc.so.6"),
    )
    .unwrap();
    let d = tmp.path().display().to_string();
    fs::write(tmp.path().join("h.c"), "int hostile(void){return 7;}\n").unwrap();
    fs::write(
        tmp.path().join("m.c"),
        "int hostile(void);\nint main(void){return hostile();}\n",
    )
    .unwrap();
    let lib = root.join("opt/l/libhostile.so").display().to_string();
    gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        &lib,
        &format!("{d}/h.c"),
        "-Wl,-soname,libhostile.so",
    ]);
    let prog = root.join("bin/p").display().to_string();
    gcc(&[
        "-o",
        &prog,
        &format!("{d}/m.c"),
        "-Wl,--enable-new-dtags,-rpath,/../../opt/l:$ORIGIN/../opt/l",
        "-L",
        &root.join("opt/l").display().to_string(),
        "-lhostile",
    ]);
    let mut cmd = tool("elfdeps");
    cmd.arg("--root").arg(&root);
    let out = run(cmd, b"/bin/p\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{:?} {stdout:?} {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    for p in stdout.lines() {
        assert!(
            !p.split('/').any(|c| c == ".."),
            "printed path climbs: {p:?}"
        );
    }
    assert!(
        stdout.lines().any(|p| p == "/opt/l/libhostile.so"),
        "{stdout:?}"
    );
}

/// A container root with a static busybox, or None (with a message).
fn busybox_root(dir: &Path) -> bool {
    let bb = Path::new("/bin/busybox");
    let static_bb = Command::new("sh")
        .args(["-c", "file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || ! ldd /bin/busybox >/dev/null 2>&1"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !bb.is_file() || !static_bb {
        testkit::skip("needs a static /bin/busybox (apt-get install busybox-static)");
        return false;
    }
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("proc")).unwrap();
    fs::copy(bb, dir.join("bin/busybox")).unwrap();
    fs::write(dir.join("marker-inside"), b"inside\n").unwrap();
    true
}

#[test]
fn chrootrun_proc_1_root_is_the_container() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    if !busybox_root(&root) {
        return;
    }
    let hostmark = tmp.path().join("host-marker");
    fs::write(&hostmark, SECRET).unwrap();
    let script = format!(
        "/bin/busybox ls /proc/1/root/; /bin/busybox cat /proc/1/root{hm}; /bin/busybox cat /proc/1/root/../..{hm}; exit 0",
        hm = hostmark.display()
    );
    let out = tool("chrootrun")
        .arg("--proc")
        .arg(&root)
        .args(["/bin/busybox", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "chrootrun --proc: {:?}, stdout {stdout:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains("marker-inside"),
        "/proc/1/root is not the container: {stdout:?}"
    );
    assert!(
        !contains(&out.stdout, SECRET),
        "host file read through /proc/1/root"
    );

    // The host's /proc bound in: host PID 1's root must stay out of reach.
    let script = format!(
        "/bin/busybox ls /proc/1/root/ ; /bin/busybox cat /proc/1/root{hm}; exit 0",
        hm = hostmark.display()
    );
    // A root caller's binds are idmapped, which proc refuses: the host's
    // /proc is bound only with --host-root (root's own ids) there.
    let host_root: &[&str] = if reliability_tests::is_root() {
        &["--host-root"]
    } else {
        &[]
    };
    let out = tool("chrootrun")
        .args(host_root)
        .args(["--bind", "/proc:/proc"])
        .arg(&root)
        .args(["/bin/busybox", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "chrootrun --bind /proc: {:?}, stdout {stdout:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !contains(&out.stdout, SECRET),
        "host file read through the host's /proc/1/root"
    );
}

#[test]
fn chrootrun_does_not_leak_an_inherited_directory_fd() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    if !busybox_root(&root) {
        return;
    }
    let hostdir = tmp.path().join("hostdir");
    fs::create_dir(&hostdir).unwrap();
    fs::write(hostdir.join("host-marker"), SECRET).unwrap();
    // Deliberately without O_CLOEXEC: a careless parent hands it down.
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    use std::os::fd::AsRawFd;
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    let hostfd = open(&hostdir, dir_flags, Mode::empty())
        .unwrap_or_else(|e| panic!("open {}: {e}", hostdir.display()));
    let rootfd_owned = open("/", dir_flags, Mode::empty()).unwrap();
    let (fd, rootfd) = (hostfd.as_raw_fd(), rootfd_owned.as_raw_fd());
    let script = format!(
        "for f in /proc/self/fd/*; do if [ -d \"$f\" ]; then echo \"DIRFD $f\"; /bin/busybox ls \"$f/\"; fi; done; \
         /bin/busybox cat /proc/self/fd/{fd}/host-marker; /bin/busybox ls /proc/self/fd/{rootfd}/; exit 0"
    );
    for proc_ns in [true, false] {
        let mut cmd = tool("chrootrun");
        // Either way the run must succeed, or the check below proves nothing.
        if proc_ns {
            cmd.arg("--proc");
        } else {
            // The host's /proc bound in (a root caller's binds are
            // idmapped, which proc refuses: --host-root binds it as is).
            if reliability_tests::is_root() {
                cmd.arg("--host-root");
            }
            cmd.args(["--bind", "/proc:/proc"]);
        }
        let out = cmd
            .arg(&root)
            .args(["/bin/busybox", "sh", "-c", &script])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "chrootrun (--proc: {proc_ns}) with fds {fd}, {rootfd} open: {:?}, stdout {stdout:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "the probe did not run");
        assert!(
            !stdout.contains("DIRFD"),
            "a directory fd reached the container: {stdout:?}"
        );
        assert!(
            !contains(&out.stdout, SECRET),
            "host file read through an inherited fd"
        );
    }
    drop((hostfd, rootfd_owned));
}
