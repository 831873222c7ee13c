//! The README's promise, "no root", kept by the whole cookbook: as an
//! ordinary user (made with useradd when the tests run as root) with the
//! PATH a login gives it (no /usr/sbin, no project tool), `minredo all`
//! with STRICT=1 in a copy of `scripts/` whose `../target/release` holds
//! the tools builds and checks hello and the Debian container (debootstrap
//! found in /usr/sbin, run under fakechroot fakeroot). Slow: a
//! debootstrap under fakechroot, a few minutes. The VM runs are left out
//! (Debian's /boot kernel is readable by root only), and so are the
//! podman runs, which need a session (XDG_RUNTIME_DIR, systemd --user)
//! that setpriv does not give; both are said in the summary.

use std::fs;
use std::process::Command;
use std::time::Instant;

use pipeline_tests::support;

const TOOLS: &[&str] = &[
    "fileids",
    "layerdiff",
    "elfdeps",
    "mkinitrd",
    "dockpack",
    "chrootrun",
    "kvmrun",
    "minredo",
];

#[test]
fn ordinary_user_builds_and_checks_the_debian_container_strictly() {
    if std::env::var_os("PIPELINE_TESTS_NO_DEBIAN").is_some() {
        support::skip("PIPELINE_TESTS_NO_DEBIAN is set (this test debootstraps a Debian tree)");
        return;
    }
    for prog in ["cc", "debootstrap", "fakechroot", "fakeroot"] {
        if !testkit::have(prog) {
            support::skip(format!("needs {prog} (see .ci/run)"));
            return;
        }
    }
    let user = match testkit::ordinary_user("filters-test") {
        Ok(u) => u,
        Err(why) => {
            support::skip(why);
            return;
        }
    };
    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    // Under /var/tmp (disk, not a tmpfs): the Debian tree is ~200 MB.
    let top = tempfile::Builder::new()
        .prefix("ordinary-user")
        .tempdir_in("/var/tmp")
        .unwrap_or_else(|e| panic!("{e}"));
    let scripts = top.path().join("scripts");
    let release = top.path().join("target/release");
    fs::create_dir(&scripts).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(&release).unwrap_or_else(|e| panic!("{e}"));
    support::copy_scripts(&scripts).unwrap_or_else(|e| panic!("{e}"));
    // Copies, not links: the user must be able to run them whatever the
    // permissions of this build's directory.
    for t in TOOLS {
        fs::copy(bins.join(t), release.join(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    user.own(top.path()).unwrap_or_else(|e| panic!("{e}"));

    let minredo = release.join("minredo");
    let start = Instant::now();
    let out = user
        .command("timeout")
        .arg("1500")
        .arg(&minredo)
        .arg("all")
        .current_dir(&scripts)
        .env("STRICT", "1")
        .env("NO_KVM", "1")
        .env("NO_DOCKER", "1")
        .output()
        .unwrap_or_else(|e| panic!("minredo all as {}: {e}", user.name));
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().collect();
    let tail = tail[tail.len().saturating_sub(40)..].join("\n");
    eprintln!(
        "minredo all as {} (uid {}): {:?} in {:.0} s\n{tail}",
        user.name,
        user.uid,
        out.status,
        start.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "minredo all as {}:\n{tail}",
        user.name
    );
    for want in [
        "checking debian.runlocal:",
        "all: checked: every target ok",
        "all: left out VM runs: NO_KVM is set",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{tail}");
    }
    let count = fs::read_to_string(scripts.join("debian.runlocal")).unwrap_or_default();
    let n: u32 = count.trim().parse().unwrap_or(0);
    assert!(
        (80..=110).contains(&n),
        "dpkg -l | wc -l in the container: {count:?}"
    );
    // The tree was made under fakeroot: its state file, and lists that
    // show root's files as root's although no root made them.
    assert!(
        scripts.join("debootstrap.fakeroot").is_file(),
        "no fakeroot state"
    );
    let list = fs::read_to_string(scripts.join("debootstrap.list")).unwrap_or_default();
    assert!(
        list.lines()
            .any(|l| l.starts_with("./usr/bin/dpkg 0100755-0-0-")),
        "debootstrap.list has no root-owned ./usr/bin/dpkg"
    );
    // debootstrap made its tree as this user, not as root.
    let st = Command::new("stat")
        .args(["-c", "%u"])
        .arg(scripts.join("debootstrap/usr/bin/dpkg"))
        .output()
        .unwrap_or_else(|e| panic!("stat: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&st.stdout).trim(),
        user.uid.to_string()
    );
}
