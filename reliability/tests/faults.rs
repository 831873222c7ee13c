//! Fault injection: a reader that closes the
//! pipe early, a file that changes between `fileids` and the packer, and
//! a full disk under `dockpack image --iidfile/--oci-dir`. Every case
//! checks the exit status, stderr, and that nothing whole-looking is left.

use reliability_tests::{is_root, run, run_stdout_closed, skip, tool};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// A tree large enough that every filter's output overflows a pipe
/// buffer (64 KiB): 2000 small files and one of 1 MiB. About 3 MiB.
fn make_tree(dir: &Path) -> Vec<u8> {
    let mut names = b".\n./big\n./d\n".to_vec();
    fs::write(dir.join("big"), vec![b'x'; 1 << 20]).unwrap();
    fs::create_dir(dir.join("d")).unwrap();
    for i in 0..2000 {
        let name = format!("f{i:05}");
        fs::write(dir.join("d").join(&name), format!("file {i}\n")).unwrap();
        names.extend_from_slice(format!("./d/{name}\n").as_bytes());
    }
    names
}

fn fileids_list(dir: &Path, names: &[u8]) -> Vec<u8> {
    let mut cmd = tool("fileids");
    cmd.arg("-C").arg(dir).args(["--owner", "0:0"]);
    let out = run(cmd, names);
    assert!(
        out.status.success(),
        "fileids: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn stdout_closed_early_is_quiet_for_every_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let names = make_tree(&tree);
    let list = fileids_list(&tree, &names);
    let list_path = tmp.path().join("tree.list");
    fs::write(&list_path, &list).unwrap();
    let layer_path = tmp.path().join("tree.layer");
    let mut cmd = tool("dockpack");
    cmd.arg("layer").arg("-C").arg(&tree);
    let layer = run(cmd, &list);
    assert!(layer.status.success(), "dockpack layer failed");
    fs::write(&layer_path, &layer.stdout).unwrap();

    // (label, command, stdin). Each writes far more than a pipe holds,
    // except elfdeps, whose closed-at-once case still hits EPIPE.
    type MakeCommand<'a> = Box<dyn Fn() -> Command + 'a>;
    let cases: Vec<(&str, MakeCommand, Vec<u8>)> = vec![
        (
            "fileids",
            Box::new(|| {
                let mut c = tool("fileids");
                c.arg("-C").arg(&tree);
                c
            }),
            names.clone(),
        ),
        (
            "layerdiff",
            Box::new(|| {
                let mut c = tool("layerdiff");
                c.arg("--whiteouts").arg("/dev/null").arg(&list_path);
                c
            }),
            Vec::new(),
        ),
        (
            "layerdiff (stdin)",
            Box::new(|| {
                let mut c = tool("layerdiff");
                c.arg("/dev/null").arg("-");
                c
            }),
            list.clone(),
        ),
        (
            "mkinitrd",
            Box::new(|| {
                let mut c = tool("mkinitrd");
                c.arg("-C").arg(&tree);
                c
            }),
            names.clone(),
        ),
        (
            "mkinitrd --gzip",
            Box::new(|| {
                let mut c = tool("mkinitrd");
                c.arg("-C").arg(&tree).arg("--gzip");
                c
            }),
            list.clone(),
        ),
        (
            "dockpack layer",
            Box::new(|| {
                let mut c = tool("dockpack");
                c.arg("layer").arg("-C").arg(&tree);
                c
            }),
            list.clone(),
        ),
        (
            "dockpack image",
            Box::new(|| {
                let mut c = tool("dockpack");
                c.args(["image", "--tag", "rel:test", "--arch", "amd64"])
                    .arg(&layer_path);
                c
            }),
            Vec::new(),
        ),
        (
            "elfdeps",
            Box::new(|| tool("elfdeps")),
            b"/bin/sh\n/usr/bin/ls\n".to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (label, make, input) in &cases {
        for keep in [0usize, 100] {
            let out = run_stdout_closed(make(), input.clone(), keep);
            eprintln!(
                "{label}, stdout closed after {keep} bytes: {:?}, stderr {:?}",
                out.status, out.stderr
            );
            if out.status.code() != Some(0) || !out.stderr.is_empty() {
                failures.push(format!(
                    "{label} (closed after {keep} bytes): {:?}, stderr {:?}",
                    out.status, out.stderr
                ));
            }
        }
    }
    assert!(failures.is_empty(), "not quiet: {failures:#?}");
}

/// How the source file is spoiled after it was listed.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    Delete,
    Truncate,
    /// Same size, other content: only the digest check can notice.
    Rewrite,
    /// Grows: the size in the already-written header would be a lie.
    Grow,
}

fn spoil(path: &Path, how: Spoil) {
    match how {
        Spoil::Delete => fs::remove_file(path).unwrap(),
        Spoil::Truncate => {
            let f = fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(1000).unwrap();
        }
        Spoil::Rewrite => fs::write(path, vec![b'y'; 100_000]).unwrap(),
        Spoil::Grow => fs::write(path, vec![b'x'; 200_000]).unwrap(),
    }
}

/// `./a`, then `./m` (100 kB, the one spoiled), then `./z`: the failing
/// member sits between good ones, so an archive that went on would look whole.
fn small_tree(dir: &Path) -> Vec<u8> {
    fs::write(dir.join("a"), b"first\n").unwrap();
    fs::write(dir.join("m"), vec![b'x'; 100_000]).unwrap();
    fs::write(dir.join("z"), b"last\n").unwrap();
    b".\n./a\n./m\n./z\n".to_vec()
}

fn lists_archive(program: &str, args: &[&str], archive: &Path) -> bool {
    let f = fs::File::open(archive).unwrap();
    Command::new(program)
        .args(args)
        .stdin(f)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[test]
fn file_changed_after_listing_gives_no_whole_archive() {
    let mut failures = Vec::new();
    for how in [Spoil::Delete, Spoil::Truncate, Spoil::Rewrite, Spoil::Grow] {
        for packer in ["mkinitrd", "mkinitrd --gzip", "dockpack layer"] {
            let tmp = tempfile::tempdir().unwrap();
            let tree = tmp.path().join("tree");
            fs::create_dir(&tree).unwrap();
            let names = small_tree(&tree);
            let list = fileids_list(&tree, &names);
            spoil(&tree.join("m"), how);
            let mut cmd = match packer {
                "dockpack layer" => {
                    let mut c = tool("dockpack");
                    c.arg("layer");
                    c
                }
                "mkinitrd --gzip" => {
                    let mut c = tool("mkinitrd");
                    c.arg("--gzip");
                    c
                }
                _ => tool("mkinitrd"),
            };
            cmd.arg("-C").arg(&tree);
            let out = run(cmd, &list);
            let archive = tmp.path().join("out");
            fs::write(&archive, &out.stdout).unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            let whole = match packer {
                "dockpack layer" => lists_archive("tar", &["-tf", "-"], &archive),
                "mkinitrd --gzip" => {
                    lists_archive("sh", &["-c", "gzip -dc | cpio -it --quiet"], &archive)
                        || lists_archive("gzip", &["-t"], &archive)
                }
                _ => {
                    lists_archive("cpio", &["-it", "--quiet"], &archive)
                        || out.stdout.windows(10).any(|w| w == b"TRAILER!!!")
                }
            };
            eprintln!(
                "{packer}, file {how:?}: {:?}, {} bytes out, stderr {stderr:?}, whole-looking: {whole}",
                out.status,
                out.stdout.len()
            );
            let one_line = stderr.lines().count() == 1;
            if out.status.code() != Some(1) || whole || !one_line || !stderr.contains("m") {
                failures.push(format!(
                    "{packer} with ./m {how:?}: {:?}, whole-looking archive: {whole}, stderr {stderr:?}",
                    out.status
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A 64 KiB tmpfs, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> Option<SmallFs> {
        if !is_root() {
            skip("mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            skip("mount -t tmpfs failed");
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system to the last byte (bounded by its 64 KiB).
    fn fill(&self) {
        use std::io::Write;
        let mut f = fs::File::create(self.path().join("filler")).unwrap();
        let block = [0u8; 4096];
        for _ in 0..64 {
            if f.write_all(&block).is_err() {
                return;
            }
        }
        panic!("a 64 KiB tmpfs took 256 KiB");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A layer of about 300 kB, more than the small tmpfs holds.
fn big_layer(tmp: &Path) -> std::path::PathBuf {
    let tree = tmp.join("tree");
    fs::create_dir(&tree).unwrap();
    // Incompressible-looking content is not needed: tmpfs does not compress.
    fs::write(tree.join("payload"), vec![b'p'; 300_000]).unwrap();
    let list = fileids_list(&tree, b".\n./payload\n");
    let mut cmd = tool("dockpack");
    cmd.arg("layer").arg("-C").arg(&tree);
    let out = run(cmd, &list);
    assert!(out.status.success());
    let path = tmp.join("layer.tar");
    fs::write(&path, &out.stdout).unwrap();
    path
}

/// Anything in `dir` (recursively) that a loader would take for an OCI
/// layout or an image id.
fn valid_looking(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return found;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            found.extend(valid_looking(&p));
        } else if name == "index.json" || name == "oci-layout" || name == "manifest.json" {
            found.push(p.display().to_string());
        } else if name == "iid" {
            let text = fs::read_to_string(&p).unwrap_or_default();
            let hex = text.trim().strip_prefix("sha256:").unwrap_or("");
            if hex.len() == 64 {
                found.push(format!("{} = {text:?}", p.display()));
            }
        }
    }
    found
}

#[test]
fn oci_dir_on_a_full_disk_leaves_no_valid_layout() {
    let Some(small) = SmallFs::mount() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layer = big_layer(tmp.path());
    let dest = small.path().join("layout");
    let out = tool("dockpack")
        .args(["image", "--tag", "rel:full", "--arch", "amd64", "--oci-dir"])
        .arg(&dest)
        .arg(&layer)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--oci-dir on a 64k tmpfs: {:?}, stderr {stderr:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(1), "stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    let left = valid_looking(small.path());
    assert!(left.is_empty(), "left a valid-looking layout: {left:?}");
}

#[test]
fn iidfile_on_a_full_disk_is_an_error_and_not_complete() {
    let Some(small) = SmallFs::mount() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layer = big_layer(tmp.path());
    small.fill();
    let iid = small.path().join("iid");
    let image = tmp.path().join("image.tar");
    let out = tool("dockpack")
        .args(["image", "--tag", "rel:full", "--arch", "amd64", "--iidfile"])
        .arg(&iid)
        .arg(&layer)
        .stdout(fs::File::create(&image).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--iidfile on a full tmpfs: {:?}, stderr {stderr:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(1), "stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    let left = valid_looking(small.path());
    assert!(left.is_empty(), "left a complete iidfile: {left:?}");
}

#[test]
fn oci_dir_when_the_disk_fills_late() {
    // Room for the layer blob but not for everything after it: the
    // failure then comes at the config/manifest/index stage.
    let Some(small) = SmallFs::mount() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("payload"), vec![b'p'; 40_000]).unwrap();
    let list = fileids_list(&tree, b".\n./payload\n");
    let mut cmd = tool("dockpack");
    cmd.arg("layer").arg("-C").arg(&tree);
    let layer = run(cmd, &list);
    let layer_path = tmp.path().join("layer.tar");
    fs::write(&layer_path, &layer.stdout).unwrap();
    // Leave 52 KiB: the 43 kB blob fits (rounded to pages, 44 KiB), the rest may not.
    fs::write(small.path().join("filler"), vec![0u8; 12 * 1024]).unwrap();
    let dest = small.path().join("layout");
    let out = tool("dockpack")
        .args(["image", "--tag", "rel:late", "--arch", "amd64", "--oci-dir"])
        .arg(&dest)
        .arg(&layer_path)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--oci-dir, disk full late: {:?}, stderr {stderr:?}",
        out.status
    );
    if out.status.success() {
        // It fitted after all: then it must be whole.
        assert!(dest.join("index.json").is_file() && dest.join("oci-layout").is_file());
        skip("the layout fitted in 52 KiB; the late-failure path was not reached");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "stderr {stderr:?}");
    let left = valid_looking(small.path());
    assert!(left.is_empty(), "left a valid-looking layout: {left:?}");
}
