//! Helpers shared by the integration tests: a hello-world tree and list
//! lines for it, computed here (the `fileids` tool is another crate).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The list line of `./rel` under `root`, as `fileids` prints it.
pub fn line(root: &Path, rel: &str) -> String {
    let p = root.join(rel);
    let m = fs::symlink_metadata(&p).unwrap();
    let mode = m.mode();
    let digest = match mode & 0o170000 {
        0o100000 => hex(&Sha256::digest(fs::read(&p).unwrap())),
        0o120000 => hex(&Sha256::digest(
            fs::read_link(&p).unwrap().as_os_str().as_bytes(),
        )),
        0o020000 | 0o060000 => format!("{}:{}", (m.rdev() >> 8) & 0xfff, m.rdev() & 0xff),
        _ => "0".to_string(),
    };
    let name = if rel == "." {
        ".".to_string()
    } else {
        format!("./{rel}")
    };
    format!("{name} {:07o}-{}-{}-{digest}\n", mode, m.uid(), m.gid())
}

/// Sorted list lines for the whole tree (names as `find . | sort`).
pub fn list(root: &Path) -> String {
    let mut names = vec![".".to_string()];
    walk(root, root, &mut names);
    names.sort_by(|a, b| format!("./{a}").as_bytes().cmp(format!("./{b}").as_bytes()));
    names.iter().map(|n| line(root, n)).collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
        out.push(rel);
        if e.file_type().unwrap().is_dir() {
            walk(root, &p, out);
        }
    }
}

/// A tree whose /init runs a dynamically linked C hello world: the
/// binary, the libraries `ldd` names, `init -> bin/hello`.
pub fn hello_tree(dir: &Path, message: &str) -> PathBuf {
    let root = dir.join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    let src = dir.join("hello.c");
    fs::write(
        &src,
        format!("#include <stdio.h>\nint main(void){{puts(\"{message}\");return 0;}}\n"),
    )
    .unwrap();
    let st = Command::new("cc")
        .arg("-o")
        .arg(root.join("bin/hello"))
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc failed");
    let ldd = Command::new("ldd")
        .arg(root.join("bin/hello"))
        .output()
        .unwrap();
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if let Some(rel) = word.strip_prefix('/') {
            let dest = root.join(rel);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(fs::canonicalize(word).unwrap(), &dest).unwrap();
        }
    }
    std::os::unix::fs::symlink("bin/hello", root.join("init")).unwrap();
    root
}

pub fn dockpack() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("dockpack").unwrap();
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// `dockpack layer -C root` with `input` on stdin, to a file.
pub fn layer(root: &Path, input: &str, out: &Path) {
    let o = dockpack()
        .arg("layer")
        .arg("-C")
        .arg(root)
        .arg("--owner")
        .arg("0:0")
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::File::create(out).unwrap().write_all(&o.stdout).unwrap();
}

/// Runs `cmd`, which must succeed: its output.
pub fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Its stdout as text.
pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `script` in a private mount namespace with cgroup2 on
/// /sys/fs/cgroup: on a host with hybrid cgroups (CI's firecracker VMs)
/// `podman run` and dockerd fail without it.
pub fn in_cgroup2(script: &str) -> Command {
    let mut c = Command::new("unshare");
    c.arg("-m").arg("sh").arg("-c").arg(format!(
        "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && {script}"
    ));
    c
}

/// `podman run` as these machines need it (see [`in_cgroup2`]), followed
/// by the image.
pub const PODMAN_RUN: &str = "podman run --rm --cgroups=disabled --ulimit nofile=1024:1024 \
                              --ulimit nproc=1024:1024 --network none";
