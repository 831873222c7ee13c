//! File capabilities and `user.*` xattrs through the whole pipeline
//! (docs/DESIGN.md, "The list format"): `fileids` shows them as a
//! `+XATTRS` digest and is still the seed's `fileids.py` on files without
//! them, `layerdiff` reports each change, `dockpack layer` writes them as
//! pax `SCHILY.xattr.*` records that `umoci unpack` restores, and a
//! program with `cap_net_bind_service+p` holds that capability in its
//! permitted set when podman runs it as uid 1000. Plus hostile attributes:
//! a 64 KiB value, a name with a newline or an `=`, attributes on a
//! symlink and a FIFO, and list lines that claim what the tree lacks.
//!
//! Everything here needs root (setting `security.capability` and
//! `trusted.*`, podman's storage, a tmpfs mount), as CI runs it; the
//! rootless case builds the image as root and has an ordinary user load
//! and run it (its user-namespaced storage keeps the capability: the
//! test skips, saying so, where it refuses the layer).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use testkit::{have, is_root, skip, tool, workspace_root};

/// Runs `cmd` with `input`, asserting success; its stdout.
fn ok(cmd: Command, input: &[u8]) -> Vec<u8> {
    let what = format!("{cmd:?}");
    let o = testkit::run(cmd, input);
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn in_dir(mut c: Command, dir: &Path) -> Command {
    c.current_dir(dir);
    c
}

/// `find . | LC_ALL=C sort` in `dir`.
fn names(dir: &Path) -> Vec<u8> {
    ok(in_dir(sh("find . | LC_ALL=C sort"), dir), b"")
}

fn fileids(dir: &Path, args: &[&str]) -> String {
    let mut c = tool("fileids");
    c.arg("-C").arg(dir).args(args);
    text(&ok(c, &names(dir)))
}

fn line_of<'a>(list: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name} ");
    list.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {name} in\n{list}"))
}

/// The permitted capability set (`CapPrm`) in a `/proc/PID/status` text.
fn cap_prm(status: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap_or_else(|| panic!("no CapPrm in\n{status}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("CapPrm {hex}: {e}"))
}

/// Whether `elf` is a 64-bit little-endian ELF file without a program
/// interpreter (`PT_INTERP`, `elf(5)`): it runs in an image without libc.
fn is_static_elf64(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).all(|i| u32_at(phoff + i * phentsize).is_some_and(|t| t != 3))
}

/// `CAP_NET_BIND_SERVICE`, `include/uapi/linux/capability.h`.
const CAP_NET_BIND_SERVICE: u32 = 10;

/// Removes the images we loaded, even when an assertion fails.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for img in &self.0 {
            let _ = Command::new("podman").args(["rmi", "-f", img]).output();
        }
    }
}

fn missing(tools: &[&str]) -> Option<String> {
    tools
        .iter()
        .find(|t| !have(t))
        .map(|t| format!("{t} is not installed (see .ci/run)"))
}

#[test]
fn capabilities_and_user_xattrs_survive_list_layer_image_and_run() {
    if !is_root() {
        skip("setting security.capability and podman's storage need root here");
        return;
    }
    if let Some(why) = missing(&[
        "setcap", "getcap", "setfattr", "getfattr", "umoci", "podman", "unshare", "python3",
    ]) {
        skip(why);
        return;
    }
    let busybox = Path::new("/bin/busybox");
    let static_bb = fs::read(busybox).ok().filter(|b| is_static_elf64(b));
    let Some(bb) = static_bb else {
        skip("/bin/busybox is not busybox-static (see .ci/run)");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    for d in ["bin", "plain", "etc"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    // The same program twice: with the capability, and without as the
    // control (busybox takes its applet from argv[1] when argv[0] is
    // `busybox`, so both are called that).
    for p in ["bin/busybox", "plain/busybox"] {
        fs::write(root.join(p), &bb).unwrap();
        fs::set_permissions(root.join(p), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(root.join("etc/note"), b"a note\n").unwrap();

    let before = fileids(&root, &[]);
    assert!(!before.contains('+'), "{before}");
    ok(
        in_dir(sh("setcap cap_net_bind_service+p bin/busybox"), &root),
        b"",
    );
    ok(
        in_dir(
            sh("setfattr -n user.origin -v dockpack-test etc/note"),
            &root,
        ),
        b"",
    );
    let after = fileids(&root, &[]);
    let with = ["./bin/busybox", "./etc/note"];
    for name in with {
        let l = line_of(&after, name);
        let (plain, x) = l.split_once('+').unwrap_or_else(|| panic!("{l}"));
        assert_eq!(
            plain,
            line_of(&before, name),
            "the content part is unchanged"
        );
        assert_eq!(x.len(), 64, "{l}");
    }
    assert_eq!(after.matches('+').count(), 2, "{after}");
    // --no-xattrs is the list of before, byte for byte.
    assert_eq!(fileids(&root, &["--no-xattrs"]), before);

    // layerdiff: each changed set is a changed line, nothing else.
    let before_list = t.path().join("before.list");
    let after_list = t.path().join("after.list");
    fs::write(&before_list, &before).unwrap();
    fs::write(&after_list, &after).unwrap();
    let mut ld = tool("layerdiff");
    ld.arg(&before_list).arg(&after_list);
    let diff = text(&ok(ld, b""));
    let want: String = with
        .iter()
        .map(|n| format!("{}\n", line_of(&after, n)))
        .collect();
    assert_eq!(diff, want);

    // The seed's fileids.py on the same tree: byte-identical on every
    // file without xattrs, and on the content part of the two with.
    let seed = workspace_root().join("fileids/tests/fixtures/seed_fileids.py");
    let mut py = Command::new("python3");
    py.arg(&seed).current_dir(&root);
    let seed_out = text(&ok(py, &names(&root)));
    assert_eq!(seed_out.lines().count(), after.lines().count());
    for (s, o) in seed_out.lines().zip(after.lines()) {
        match o.split_once('+') {
            Some((plain, _)) => assert_eq!(s, plain),
            None => assert_eq!(s, o),
        }
    }

    // dockpack layer + image (uncompressed), umoci unpack: both restored.
    let layer = t.path().join("layer.tar");
    let mut dp = tool("dockpack");
    dp.arg("layer").arg("-C").arg(&root);
    fs::write(&layer, ok(dp, after.as_bytes())).unwrap();
    let oci = t.path().join("oci");
    let name = format!("dockpack-xattrs-{}", std::process::id());
    let tag = format!("{name}:1");
    let mut img = tool("dockpack");
    img.args(["image", "--tag", &tag, "--oci-dir"])
        .arg(&oci)
        .arg(&layer);
    ok(img, b"");
    let bundle = t.path().join("bundle");
    let mut umoci = Command::new("umoci");
    umoci
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", oci.display()))
        .arg(&bundle);
    ok(umoci, b"");
    let rootfs = bundle.join("rootfs");
    let mut getcap = Command::new("getcap");
    getcap.arg(rootfs.join("bin/busybox"));
    let caps = text(&ok(getcap, b""));
    assert!(caps.contains("cap_net_bind_service=p"), "getcap: {caps}");
    let mut getcap = Command::new("getcap");
    getcap.arg(rootfs.join("plain/busybox"));
    assert_eq!(text(&ok(getcap, b"")).trim(), "", "the control has none");
    let mut getfattr = Command::new("getfattr");
    getfattr
        .args(["--only-values", "-n", "user.origin"])
        .arg(rootfs.join("etc/note"));
    assert_eq!(text(&ok(getfattr, b"")), "dockpack-test");
    // And fileids sees the unpacked files as it saw the source.
    let unpacked = fileids(&rootfs, &[]);
    for name in with {
        assert_eq!(line_of(&unpacked, name), line_of(&after, name));
    }
    eprintln!("layerdiff, fileids.py, umoci unpack, getcap, getfattr: ok");

    // podman run --user 1000: the file capability lands in CapPrm.
    let image = t.path().join("img.tar");
    let mut img = tool("dockpack");
    img.args(["image", "--tag", &tag]).arg(&layer);
    fs::write(&image, ok(img, b"")).unwrap();
    let _images = Images(vec![tag.clone()]);
    let mut load = Command::new("podman");
    load.arg("load").arg("-i").arg(&image);
    ok(load, b"");
    // The cgroup dance of dockpack/tests/engines.rs: on hybrid cgroups
    // (CI's VMs) `podman run` needs cgroup2 in a private mount namespace.
    let status = |prog: &str| -> String {
        let script = format!(
            "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && \
             podman run --rm --cgroups=disabled --ulimit nofile=1024:1024 \
             --ulimit nproc=1024:1024 --network none --user 1000 {tag} \
             {prog} cat /proc/self/status"
        );
        let mut c = Command::new("unshare");
        c.arg("-m").arg("sh").arg("-c").arg(script);
        text(&ok(c, b""))
    };
    let with_cap = status("/bin/busybox");
    assert!(with_cap.contains("\nUid:\t1000\t"), "{with_cap}");
    let prm = cap_prm(&with_cap);
    assert_ne!(
        prm & (1 << CAP_NET_BIND_SERVICE),
        0,
        "CapPrm {prm:x} lacks CAP_NET_BIND_SERVICE"
    );
    let control = cap_prm(&status("/plain/busybox"));
    assert_eq!(
        control, 0,
        "the copy without the capability has CapPrm {control:x}"
    );
    eprintln!("podman run --user 1000: CapPrm {prm:016x} (control {control:016x}): ok");
}

/// What `dockpack layer` wrote, as Python's tarfile reads it: one line per
/// member and pax record, `NAME<TAB>KEY<TAB>VALUE-LENGTH`.
const PAX_DUMP: &str = r#"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        for k, v in sorted(m.pax_headers.items()):
            if k.startswith("SCHILY.xattr."):
                raw = v.encode("utf-8", "surrogateescape")
                print(repr(m.name), repr(k), len(raw), sep="\t")
"#;

#[test]
fn hostile_xattrs_are_bounded_exact_or_refused() {
    if !is_root() {
        skip("trusted.* xattrs and a tmpfs mount need root");
        return;
    }
    if let Some(why) = missing(&["unshare", "python3", "mount"]) {
        skip(why);
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    let out = t.path().join("out");
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&out).unwrap();
    let dump = t.path().join("dump.py");
    fs::write(&dump, PAX_DUMP).unwrap();
    // tmpfs, private to this mount namespace: ext4 keeps xattrs in one
    // 4 KiB block, tmpfs takes a value of XATTR_SIZE_MAX.
    let setup = r#"
import os
os.chdir(os.environ["MNT"])
open("big", "w").close()
os.setxattr("big", "user.big", b"x" * 65536)
open("newline", "w").close()
os.setxattr("newline", "user.a\nb", b"\0\n=binary")
open("equals", "w").close()
os.setxattr("equals", "user.a=b", b"1")
open("plain", "w").write("plain\n")
os.symlink("big", "lnk")
os.setxattr("lnk", "trusted.x", b"on the link", follow_symlinks=False)
os.mkfifo("fifo")
os.setxattr("fifo", "trusted.y", b"on the fifo", follow_symlinks=False)
"#;
    fs::write(t.path().join("setup.py"), setup).unwrap();
    let fileids = tool("fileids").get_program().to_owned();
    let dockpack = tool("dockpack").get_program().to_owned();
    let script = r#"
set -u
mount -t tmpfs -o size=8m none "$MNT" || exit 90
python3 "$T/setup.py" || exit 91
cd "$MNT"
printf '.\n./big\n./fifo\n./lnk\n./newline\n./plain\n' > "$OUT/names"
"$FILEIDS" < "$OUT/names" > "$OUT/list"; echo $? > "$OUT/list.rc"
"$FILEIDS" --no-xattrs < "$OUT/names" > "$OUT/list0"
# A line that claims xattrs the file lacks; the 64 KiB file listed
# without the set it has.
grep '^\./plain ' "$OUT/list0" | sed 's/$/+'"$ZEROS"'/' > "$OUT/claims"
grep '^\./big ' "$OUT/list0" > "$OUT/lacks"
"$DOCKPACK" layer < "$OUT/list" > "$OUT/layer.tar" 2> "$OUT/layer.err"; echo $? > "$OUT/layer.rc"
printf './equals\n' | "$DOCKPACK" layer > /dev/null 2> "$OUT/equals.err"; echo $? > "$OUT/equals.rc"
"$DOCKPACK" layer < "$OUT/claims" > /dev/null 2> "$OUT/claims.err"; echo $? > "$OUT/claims.rc"
"$DOCKPACK" layer < "$OUT/lacks" > /dev/null 2> "$OUT/lacks.err"; echo $? > "$OUT/lacks.rc"
"$DOCKPACK" layer --no-xattrs < "$OUT/lacks" > /dev/null 2> "$OUT/noxattrs.err"; echo $? > "$OUT/noxattrs.rc"
"#;
    let mut c = Command::new("unshare");
    c.arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .env("MNT", &mnt)
        .env("OUT", &out)
        .env("T", t.path())
        .env("ZEROS", "0".repeat(64))
        .env("FILEIDS", &fileids)
        .env("DOCKPACK", &dockpack);
    let o: Output = testkit::run(c, b"");
    assert!(
        o.status.success(),
        "setup failed ({}): {}",
        o.status,
        text(&o.stderr)
    );
    let read = |f: &str| fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(read("list.rc").trim(), "0");
    let list = read("list");
    // Each of these has a set, the plain file and the root none.
    for name in ["./big", "./fifo", "./lnk", "./newline"] {
        assert!(line_of(&list, name).contains('+'), "{list}");
    }
    assert!(!line_of(&list, "./plain").contains('+'));
    assert!(!line_of(&list, ".").contains('+'));
    // The symlink's own attribute, not its target's: another digest.
    let x = |name: &str| line_of(&list, name).split_once('+').unwrap().1.to_string();
    assert_ne!(x("./lnk"), x("./big"));
    // Without xattrs: the same lines up to the `+`.
    let list0 = read("list0");
    for (a, b) in list0.lines().zip(list.lines()) {
        assert_eq!(a, b.split('+').next().unwrap());
    }

    // The layer holds every value exactly: 64 KiB, a binary value under a
    // name with a newline, the link's and the FIFO's own.
    assert_eq!(read("layer.rc").trim(), "0", "{}", read("layer.err"));
    let mut py = Command::new("python3");
    py.arg(&dump).arg(out.join("layer.tar"));
    let pax = text(&ok(py, b""));
    let want = [
        "'big'\t'SCHILY.xattr.user.big'\t65536",
        "'fifo'\t'SCHILY.xattr.trusted.y'\t11",
        "'lnk'\t'SCHILY.xattr.trusted.x'\t11",
        "'newline'\t'SCHILY.xattr.user.a\\nb'\t9",
    ];
    assert_eq!(pax.lines().collect::<Vec<_>>(), want, "{pax}");

    // Refused, naming the file: a name pax cannot carry, a line claiming
    // a set the file lacks, a line without the set the file has.
    assert_eq!(read("equals.rc").trim(), "1");
    let e = read("equals.err");
    assert!(e.contains("\"./equals\"") && e.contains("'='"), "{e}");
    assert_eq!(read("claims.rc").trim(), "1");
    let e = read("claims.err");
    assert!(
        e.contains("\"./plain\"") && e.contains("xattrs differ from the list's"),
        "{e}"
    );
    assert_eq!(read("lacks.rc").trim(), "1");
    let e = read("lacks.err");
    assert!(
        e.contains("\"./big\"") && e.contains("the list says none") && e.contains("user.big"),
        "{e}"
    );
    // --no-xattrs neither reads nor checks them.
    assert_eq!(read("noxattrs.rc").trim(), "0", "{}", read("noxattrs.err"));
}

/// The same capability through rootless podman: the image is built as
/// root (only root may `setcap`), loaded and run by an ordinary user,
/// whose storage holds the layer in its user namespace.
#[test]
fn rootless_podman_keeps_the_capability() {
    if !is_root() {
        skip("setcap needs root: no image with a file capability to give the ordinary user");
        return;
    }
    if let Some(why) = missing(&["setcap", "podman", "setpriv", "useradd"]) {
        skip(why);
        return;
    }
    let Some(bb) = fs::read("/bin/busybox").ok().filter(|b| is_static_elf64(b)) else {
        skip("/bin/busybox is not busybox-static (see .ci/run)");
        return;
    };
    let user = match testkit::ordinary_user("filters-test") {
        Ok(u) => u,
        Err(e) => {
            skip(format!("no ordinary user: {e}"));
            return;
        }
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("bin/busybox"), &bb).unwrap();
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    ok(
        in_dir(sh("setcap cap_net_bind_service+p bin/busybox"), &root),
        b"",
    );
    let list = fileids(&root, &[]);
    assert!(line_of(&list, "./bin/busybox").contains('+'), "{list}");
    let layer = t.path().join("layer.tar");
    let mut dp = tool("dockpack");
    dp.arg("layer").arg("-C").arg(&root);
    fs::write(&layer, ok(dp, list.as_bytes())).unwrap();
    let tag = format!("dockpack-xattrs-rootless-{}:1", std::process::id());
    let image = t.path().join("img.tar");
    let mut img = tool("dockpack");
    img.args(["image", "--tag", &tag]).arg(&layer);
    fs::write(&image, ok(img, b"")).unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).unwrap();

    // crun refuses rootless containers on hybrid cgroups (CI's VMs);
    // runc runs them there, without `--cgroups=disabled`.
    let engine = "if [ \"$(stat -f -c %T /sys/fs/cgroup)\" = cgroup2fs ]; \
                  then set -- --cgroups=disabled; else set -- --runtime runc; fi";
    let as_user = |script: String| -> Output {
        let mut c = user.command("sh");
        c.arg("-c").arg(format!("cd && {engine} && {script}"));
        testkit::run(c, b"")
    };
    struct Rmi<'a>(&'a dyn Fn(String) -> Output, String);
    impl Drop for Rmi<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(format!("podman rmi -f {} >/dev/null 2>&1", self.1));
        }
    }
    let _rmi = Rmi(&as_user, tag.clone());
    let load = as_user(format!("podman load -i {}", image.display()));
    if !load.status.success() {
        let err = text(&load.stderr);
        if err.contains("security.capability") || err.contains("operation not permitted") {
            skip(format!(
                "rootless podman's storage refuses the layer: {}",
                err.trim()
            ));
            return;
        }
        panic!("podman load as {}: {err}", user.name);
    }
    let run = as_user(format!(
        "podman run \"$@\" --rm --network none --user 1000 {tag} /bin/busybox cat /proc/self/status"
    ));
    assert!(run.status.success(), "podman run: {}", text(&run.stderr));
    let prm = cap_prm(&text(&run.stdout));
    assert_ne!(
        prm & (1 << CAP_NET_BIND_SERVICE),
        0,
        "rootless: CapPrm {prm:x} lacks CAP_NET_BIND_SERVICE"
    );
    eprintln!("rootless podman run --user 1000: CapPrm {prm:016x}: ok");
}

/// newc has no xattrs: `mkinitrd` packs lines that carry a set as it
/// packs the same lines without, content digests checked as before, and
/// says so once on stderr, naming the first such file.
#[test]
fn mkinitrd_warns_once_that_newc_drops_xattrs() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::write(root.join("a"), b"a\n").unwrap();
    fs::write(root.join("b"), b"b\n").unwrap();
    let plain = fileids(root, &["--no-xattrs"]);
    let zeros = "0".repeat(64);
    let with: String = plain
        .lines()
        .map(|l| {
            if l.starts_with(". ") {
                format!("{l}\n")
            } else {
                format!("{l}+{zeros}\n")
            }
        })
        .collect();
    let pack = |list: &str| -> Output {
        let mut c = tool("mkinitrd");
        c.arg("-C").arg(root).env_remove("SOURCE_DATE_EPOCH");
        testkit::run(c, list.as_bytes())
    };
    let without = pack(&plain);
    assert!(without.status.success(), "{}", text(&without.stderr));
    assert_eq!(text(&without.stderr), "");
    let o = pack(&with);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        "mkinitrd: warning: 2 files have xattrs, which newc cannot carry (first: \"./a\")\n"
    );
    assert!(o.stdout == without.stdout, "the same archive either way");
    // The content part is still checked.
    let hash = line_of(&plain, "./a").rsplit('-').next().unwrap();
    let bad = with.replace(hash, &zeros);
    let o = pack(&bad);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("./a"), "{}", text(&o.stderr));
}
