//! The cookbook end to end, as a user runs it: `scripts/` copied into a
//! scratch directory, our binaries on PATH, `all` through the redo driver
//! and through make. One test, in steps, because the steps share the
//! expensive parts (one debootstrap, the VM boots) and CI has 90 minutes.
//!
//! 1. `redo all`: hello prints `Hello, world!` in the chroot, the VM and
//!    podman; the Debian container counts its packages (80-110) in the
//!    chroot, the VM and podman; simple.image.gz unpacks to simple.image;
//!    libs' layer holds the libraries and simple's the programs, libs
//!    under simple as the seed orders them; debian's layer only /init.
//! 2. `redo clean` and a rebuild give byte-identical layers, layer ids
//!    (the seed's NAME.list.sha256) and image ids.
//! 3. A Docker engine started here runs the hello image (`simple.rundocker`
//!    with DOCKER_HOST set).
//! 4. `make all` in a second copy that starts from the same Debian tree
//!    gives the same ids as redo; a second `make` changes nothing; touching
//!    hello.c rebuilds the hello side and not the Debian side.
//!
//! PIPELINE_TESTS_NO_DEBIAN=1 leaves the Debian container out (no
//! download), for a quick local run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

use pipeline_tests::support;

struct Env {
    path: OsString,
}

impl Env {
    /// Runs `prog args` in `dir` with our PATH, no DOCKER_HOST unless
    /// given in `extra`, and panics with its output if it fails.
    fn run(&self, dir: &Path, prog: &str, args: &[&str], extra: &[(&str, &str)]) -> String {
        let start = Instant::now();
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .current_dir(dir)
            .env("PATH", &self.path)
            .env("STRICT", "1")
            .env_remove("DOCKER_HOST")
            .env_remove("ENGINE")
            .env_remove("MINREDO_RUN")
            .env_remove("MINREDO_DB")
            .env_remove("COMPRESS")
            .env_remove("REGISTRY")
            .env_remove("MAKEFLAGS");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{prog}: cannot run: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "== {prog} {} ({:.1} s)\n{}",
            args.join(" "),
            start.elapsed().as_secs_f64(),
            tail(&stderr, 60)
        );
        assert!(
            out.status.success(),
            "{prog} {args:?} in {} failed: {}",
            dir.display(),
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The last `n` lines of a log (debootstrap says a lot).
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("sha256sum: {e}"));
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Every id a rebuild must reproduce: the seed's layer ids, the image ids,
/// and the digests of the layer, image and .gz files themselves.
fn ids(dir: &Path, debian: bool) -> BTreeMap<String, String> {
    let mut names = vec!["libs", "simple"];
    if debian {
        names.extend(["debootstrap", "debian"]);
    }
    let mut m = BTreeMap::new();
    for n in &names {
        m.insert(format!("{n}.list"), sha256(&dir.join(format!("{n}.list"))));
        m.insert(
            format!("{n}.layer"),
            sha256(&dir.join(format!("{n}.layer"))),
        );
    }
    let mut images = vec!["simple"];
    if debian {
        images.push("debian");
    }
    for i in images {
        m.insert(format!("{i}.iid"), read(dir, &format!("{i}.iid")));
        m.insert(
            format!("{i}.image"),
            sha256(&dir.join(format!("{i}.image"))),
        );
    }
    m.insert(
        "simple.image.gz".into(),
        sha256(&dir.join("simple.image.gz")),
    );
    m
}

fn list_names(dir: &Path, list: &str) -> Vec<String> {
    read(dir, list)
        .lines()
        .filter_map(|l| l.rsplit_once(' ').map(|(n, _)| n.to_string()))
        .collect()
}

fn check_outputs(dir: &Path, debian: bool, kvm_debian: bool) {
    for t in ["libs.runlocal", "libs.runkvm", "simple.rundocker"] {
        assert_eq!(read(dir, t), "Hello, world!\n", "{t}");
    }
    // The .gz is the image, compressed.
    let gz = Command::new("gzip")
        .args(["-dc"])
        .arg(dir.join("simple.image.gz"))
        .output()
        .unwrap_or_else(|e| panic!("gzip: {e}"));
    assert!(gz.status.success());
    assert_eq!(
        gz.stdout,
        fs::read(dir.join("simple.image")).unwrap_or_default(),
        "simple.image.gz does not unpack to simple.image"
    );
    // Layers: libs holds the libraries, simple the programs.
    let libs = list_names(dir, "libs.list");
    let simple = list_names(dir, "simple.list");
    assert!(
        libs.iter().any(|n| n.ends_with("/libc.so.6")),
        "libs.list: {libs:?}"
    );
    assert!(
        libs.iter().any(|n| n.starts_with("./lib64/ld-linux")),
        "libs.list: {libs:?}"
    );
    assert!(
        !libs.iter().any(|n| n == "./bin/hello"),
        "libs.list: {libs:?}"
    );
    assert!(
        simple.iter().any(|n| n == "./bin/hello"),
        "simple.list: {simple:?}"
    );
    assert!(
        simple.iter().any(|n| n == "./init"),
        "simple.list: {simple:?}"
    );
    assert!(
        !simple.iter().any(|n| n.contains("libc.so")),
        "simple.list: {simple:?}"
    );
    // The image stacks libs under simple: the config's rootfs.diff_ids
    // (the layer tars' digests, whatever $COMPRESS did to the blobs)
    // list bottom first.
    let member = |name: &str| {
        let o = Command::new("tar")
            .args(["-xOf"])
            .arg(dir.join("simple.image"))
            .arg(name)
            .output()
            .unwrap_or_else(|e| panic!("tar: {e}"));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let manifest = member("manifest.json");
    let config_name = manifest
        .split("\"Config\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("manifest.json names no Config: {manifest}"));
    let config = member(config_name);
    let libs_at = config.find(&sha256(&dir.join("libs.layer")));
    let simple_at = config.find(&sha256(&dir.join("simple.layer")));
    assert!(
        matches!((libs_at, simple_at), (Some(a), Some(b)) if a < b),
        "the config does not list libs then simple: {config}"
    );
    if debian {
        let mut runs = vec!["debian.runlocal", "debian.rundocker"];
        if kvm_debian {
            runs.push("debian.runkvm");
        }
        for t in runs {
            let n: u32 = read(dir, t)
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{t}: {e}"));
            assert!((80..=110).contains(&n), "{t}: {n} packages");
        }
        assert_eq!(list_names(dir, "debian.list"), vec!["./init".to_string()]);
        assert!(list_names(dir, "debootstrap.list").len() > 5000);
    }
}

/// The modification times of every product in `dir` (not the trees).
fn mtimes(dir: &Path) -> BTreeMap<String, SystemTime> {
    let mut m = BTreeMap::new();
    for e in fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let meta = match e.metadata() {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        if let Ok(t) = meta.modified() {
            m.insert(e.file_name().to_string_lossy().into_owned(), t);
        }
    }
    m
}

#[test]
fn cookbook_through_redo_and_make() {
    if !support::is_root() {
        support::skip("the VM, podman and docker runs need root on these machines");
        return;
    }
    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    let env = Env {
        path: support::path_with(&bins),
    };
    let debian = std::env::var_os("PIPELINE_TESTS_NO_DEBIAN").is_none();
    let no_debian: &[(&str, &str)] = if debian { &[] } else { &[("NO_DEBIAN", "1")] };
    let minredo = bins.join("minredo");
    let minredo = minredo.to_str().unwrap_or("minredo");

    // 1. redo all.
    let r = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = r.path();
    support::copy_scripts(r).unwrap_or_else(|e| panic!("{e}"));
    env.run(r, minredo, &["all"], no_debian);
    check_outputs(r, debian, true);
    let first = ids(r, debian);

    // 2. Clean (the Debian trees stay) and rebuild: the same bytes.
    env.run(r, minredo, &["clean"], &[]);
    assert!(!r.join("simple.image").exists(), "clean left simple.image");
    let mut again = vec!["simple.image.gz"];
    if debian {
        again.push("debian.image");
    }
    env.run(r, minredo, &again, &[]);
    assert_eq!(ids(r, debian), first, "a rebuild changed an id");

    // 2b. $COMPRESS is a dependency (default.setting.do): a new value
    //     rebuilds the image, the same value again nothing.
    let ifchange = r.join(".redo/bin/redo-ifchange");
    let ifchange = ifchange.to_str().unwrap_or("redo-ifchange");
    let holds = |what: &[u8]| {
        let bytes = fs::read(r.join("simple.image")).unwrap_or_else(|e| panic!("{e}"));
        bytes.windows(what.len()).any(|w| w == what)
    };
    let modified = |target: &str| {
        fs::metadata(r.join(target))
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{target}: {e}"))
    };
    // `target` is remade when `var` becomes `value`, and not again with
    // the same value.
    let remade_once = |target: &str, var: &str, value: &str| {
        let before = modified(target);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let setting = [(var, value)];
        env.run(r, ifchange, &[target], &setting);
        let built = modified(target);
        assert_ne!(built, before, "{var}={value:?} did not remake {target}");
        env.run(r, ifchange, &[target], &setting);
        assert_eq!(
            modified(target),
            built,
            "{var}={value:?} again remade {target}"
        );
    };
    // Unset, as in the build above: nothing to do.
    let built = modified("simple.image");
    env.run(r, ifchange, &["simple.image"], &[]);
    assert_eq!(
        modified("simple.image"),
        built,
        "an unchanged $COMPRESS rebuilt it"
    );
    remade_once("simple.image", "COMPRESS", "zstd");
    assert!(holds(b"tar+zstd"), "COMPRESS=zstd made no zstd layer");
    remade_once("simple.image", "COMPRESS", "");
    assert!(!holds(b"tar+zstd"), "COMPRESS= kept a zstd layer");
    assert_eq!(ids(r, debian), first, "$COMPRESS changed an id");
    // So is $KVMRUN_KERNEL for the initrds (its configuration decides
    // their compression): another kernel remakes simple.initrd, once,
    // and so does going back to the one the run was given (none:
    // kvmrun's choice).
    env.run(r, ifchange, &["simple.initrd"], &[]);
    remade_once("simple.initrd", "KVMRUN_KERNEL", "/nonexistent/vmlinuz-0");
    let given = std::env::var("KVMRUN_KERNEL").unwrap_or_default();
    remade_once("simple.initrd", "KVMRUN_KERNEL", &given);

    // 3. A Docker engine of our own runs the hello image.
    match support::Dockerd::start() {
        Ok(dockerd) => {
            env.run(
                r,
                minredo,
                &["simple.rundocker"],
                &[("DOCKER_HOST", dockerd.host.as_str())],
            );
            assert_eq!(read(r, "simple.rundocker"), "Hello, world!\n", "docker run");
            let engine = env.run(
                r,
                "./docker.sh",
                &["engine"],
                &[("DOCKER_HOST", &dockerd.host)],
            );
            assert_eq!(engine, "docker\n");
        }
        Err(e) => panic!("docker engine: {e}"),
    }

    // 4. make all, from the same Debian tree (a debootstrap is slow, and
    //    the same tree must give the same ids under make as under redo).
    let m = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let m = m.path();
    support::copy_scripts(m).unwrap_or_else(|e| panic!("{e}"));
    if debian {
        for d in ["debdownload", "debootstrap"] {
            let st = Command::new("cp")
                .arg("-a")
                .arg(r.join(d))
                .arg(m)
                .status()
                .unwrap_or_else(|e| panic!("cp: {e}"));
            assert!(st.success());
        }
        // Stamps newer than their inputs, in dependency order.
        for s in ["debdownload.fs", "debootstrap.fs"] {
            std::thread::sleep(std::time::Duration::from_millis(20));
            fs::write(m.join(s), "").unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // The Debian VM boot was checked through redo; skip it here to save CI time.
    let mut make_env: Vec<(&str, &str)> = vec![("NO_DEBIAN_KVM", "1")];
    make_env.extend_from_slice(no_debian);
    env.run(m, "make", &[], &make_env);
    check_outputs(m, debian, false);
    assert_eq!(ids(m, debian), first, "make and redo built different ids");

    // A second make changes nothing.
    let before = mtimes(m);
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.run(m, "make", &[], &make_env);
    assert_eq!(mtimes(m), before, "a second make rebuilt something");

    // Touching hello.c rebuilds the hello side only.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let now = fs::File::options()
        .append(true)
        .open(m.join("hello.c"))
        .and_then(|f| f.set_modified(SystemTime::now()));
    now.unwrap_or_else(|e| panic!("touch hello.c: {e}"));
    env.run(m, "make", &[], &make_env);
    let after = mtimes(m);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    for t in [
        "hello",
        "simple.fs",
        "libs.fs",
        "simple.image",
        "libs.runkvm",
        "libs.runlocal",
    ] {
        assert!(
            changed.iter().any(|c| c.as_str() == t),
            "{t} not rebuilt: {changed:?}"
        );
    }
    for c in &changed {
        assert!(
            !c.starts_with("debian")
                && !c.starts_with("debootstrap")
                && !c.starts_with("debdownload"),
            "touching hello.c rebuilt {c}"
        );
    }
}
