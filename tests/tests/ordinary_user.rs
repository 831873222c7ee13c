//! The README's promise, "no root", kept by the whole cookbook: as an
//! ordinary user (made with useradd when the tests run as root) with the
//! PATH a login gives it (no /usr/sbin, no project tool), `minredo all`
//! with STRICT=1 in a copy of `scripts/` whose `../target/release` holds
//! the tools builds and checks hello and the Debian container (debootstrap
//! found in /usr/sbin, run under fakechroot fakeroot). Slow: a
//! debootstrap under fakechroot, a minute or two. The VM runs are left
//! out (Debian's /boot kernel is readable by root only; the summary says
//! so). The images run in rootless podman, with runc where the host's
//! cgroups are hybrid (crun refuses them; the second test checks that
//! docker.sh says so).

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
    let mut cmd = user.command("timeout");
    cmd.arg("1500")
        .arg(&minredo)
        .arg("all")
        .current_dir(&scripts)
        .env("STRICT", "1")
        .env("NO_KVM", "1");
    let docker = podman_flags();
    match &docker {
        Ok(flags) => {
            cmd.env("ENGINE", "podman").env("ENGINE_FLAGS", flags);
        }
        Err(why) => {
            eprintln!("leaving the podman runs out: {why}");
            cmd.env("NO_DOCKER", "1");
        }
    }
    let out = cmd
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
    let mut wants = vec![
        "checking debian.runlocal:",
        "all: checked: every target ok",
        "all: left out VM runs: NO_KVM is set",
    ];
    if docker.is_ok() {
        wants.extend(["checking debian.rundocker:", "checking simple.rundocker:"]);
    }
    for want in wants {
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

/// Whether /sys/fs/cgroup is cgroup v1 or hybrid (not a cgroup2 mount).
fn hybrid_cgroups() -> bool {
    let out = Command::new("stat")
        .args(["-fc", "%T", "/sys/fs/cgroup"])
        .output()
        .ok();
    out.is_none_or(|o| o.stdout.trim_ascii() != b"cgroup2fs")
}

/// The ENGINE_FLAGS rootless podman needs here, or why it cannot run.
fn podman_flags() -> Result<String, String> {
    if !testkit::have("podman") {
        return Err("podman is not installed".into());
    }
    if !hybrid_cgroups() {
        return Ok(String::new());
    }
    if testkit::have("runc") {
        Ok("--runtime runc".into())
    } else {
        Err("hybrid cgroups, on which crun refuses rootless containers, and no runc".into())
    }
}

/// Rootless podman with crun on hybrid cgroups: the run fails, and
/// docker.sh says what to set; with that set, it runs.
#[test]
fn docker_sh_says_what_to_set_for_rootless_podman_on_hybrid_cgroups() {
    if !hybrid_cgroups() {
        support::skip("the host's cgroups are not hybrid: crun runs rootless here");
        return;
    }
    for prog in ["podman", "crun", "runc", "cc"] {
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
    let top = tempfile::Builder::new()
        .prefix("rootless-podman")
        .tempdir_in("/var/tmp")
        .unwrap_or_else(|e| panic!("{e}"));
    let scripts = top.path().join("scripts");
    let release = top.path().join("target/release");
    fs::create_dir(&scripts).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(&release).unwrap_or_else(|e| panic!("{e}"));
    support::copy_scripts(&scripts).unwrap_or_else(|e| panic!("{e}"));
    for t in TOOLS {
        fs::copy(bins.join(t), release.join(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    user.own(top.path()).unwrap_or_else(|e| panic!("{e}"));
    let run = |flags: Option<&str>| {
        let mut cmd = user.command("timeout");
        cmd.arg("300")
            .arg(release.join("minredo"))
            .arg("simple.rundocker")
            .current_dir(&scripts)
            .env("ENGINE", "podman");
        if let Some(f) = flags {
            cmd.env("ENGINE_FLAGS", f);
        }
        cmd.output().unwrap_or_else(|e| panic!("minredo: {e}"))
    };
    // crun is podman's default runtime on Debian: unless the user's
    // containers.conf says otherwise, this is the failure users meet.
    let out = run(Some("--runtime crun"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "crun ran rootless on hybrid cgroups:\n{err}"
    );
    assert!(
        err.contains("set ENGINE_FLAGS='--runtime runc'"),
        "docker.sh does not say what to set:\n{err}"
    );
    let out = run(Some("--runtime runc"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "with runc:\n{err}");
    let got = fs::read_to_string(scripts.join("simple.rundocker")).unwrap_or_default();
    assert_eq!(got, "Hello, world!\n");
}
