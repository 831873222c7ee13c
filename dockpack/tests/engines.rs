//! The images against the real engines: podman, skopeo, umoci, a real
//! registry (distribution) and a real Docker engine (20.10).
//!
//! These use global state (podman's storage, ports, a daemon), so they
//! run as one test function, in sequence, with unique tags, and every
//! service is stopped by a guard even when an assertion fails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{hex, in_cgroup2, layer, list, run, text, PODMAN_RUN};
use sha2::{Digest, Sha256};
use testkit::engines::{PodmanImages, Registry, Service};
use testkit::{have, is_root, skip};

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{what} did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A hello program that also says whether /gone exists.
fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    let src = dir.join("hello.c");
    fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){puts(\"Hello, world!\");\
         puts(access(\"/gone\", F_OK) == 0 ? \"gone: present\" : \"gone: absent\");return 0;}\n",
    )
    .unwrap();
    run(Command::new("cc")
        .arg("-o")
        .arg(root.join("bin/hello"))
        .arg(&src));
    let ldd = run(Command::new("ldd").arg(root.join("bin/hello")));
    for word in text(&ldd).split_whitespace() {
        if let Some(rel) = word.strip_prefix('/') {
            let dest = root.join(rel);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(fs::canonicalize(word).unwrap(), &dest).unwrap();
        }
    }
    std::os::unix::fs::symlink("bin/hello", root.join("init")).unwrap();
    fs::write(root.join("gone"), b"to be deleted").unwrap();
    root
}

/// `dockpack` as a std `Command` (for [`run`]).
fn dp() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dockpack"));
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

fn sha256_file(p: &Path) -> String {
    hex(&Sha256::digest(fs::read(p).unwrap()))
}

#[test]
fn real_engines_load_and_run_the_image() {
    if !is_root() {
        skip("the engines need root here");
        return;
    }
    for tool in [
        "podman",
        "skopeo",
        "umoci",
        "docker-registry",
        "dockerd",
        "cc",
        "unshare",
    ] {
        if !have(tool) {
            skip(format!("{tool} is not installed (see .ci/run)"));
            return;
        }
    }
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let base = t.path().join("base.tar");
    layer(&root, &list(&root), &base);
    // The upper layer deletes /gone: the lists before and after, and
    // `layerdiff --whiteouts` between them (built beside dockpack:
    // `cargo build -p layerdiff` with the same target dir).
    let upper = t.path().join("upper.tar");
    let base_list = t.path().join("base.list");
    fs::write(&base_list, list(&root)).unwrap();
    fs::rename(root.join("gone"), t.path().join("gone.saved")).unwrap();
    let new_list = t.path().join("new.list");
    fs::write(&new_list, list(&root)).unwrap();
    fs::rename(t.path().join("gone.saved"), root.join("gone")).unwrap();
    let layerdiff = assert_cmd::cargo::cargo_bin("dockpack").with_file_name("layerdiff");
    let upper_list = if layerdiff.exists() {
        let o = run(Command::new(&layerdiff)
            .arg("--whiteouts")
            .arg(&base_list)
            .arg(&new_list));
        text(&o)
    } else {
        eprintln!(
            "note: {} not built; writing the whiteout line by hand",
            layerdiff.display()
        );
        "./.wh.gone 0100000-0-0-whiteout\n".to_string()
    };
    assert_eq!(upper_list, "./.wh.gone 0100000-0-0-whiteout\n");
    layer(&root, &upper_list, &upper);

    let name = format!("dockpack-test-{}", std::process::id());
    let tag = format!("{name}:1");
    let img = t.path().join("img.tar");
    let iid = t.path().join("iid");
    let o = run(dp()
        .args(["image", "--tag", &tag, "--iidfile"])
        .arg(&iid)
        .arg(&base)
        .arg(&upper));
    // The engines load the image as written to a file (the one-pass
    // path); it must be the very bytes of the piped one (two-pass path).
    let mut to_file = dp();
    to_file
        .args(["image", "--tag", &tag])
        .arg(&base)
        .arg(&upper)
        .stdout(fs::File::create(&img).unwrap());
    run(&mut to_file);
    assert!(fs::read(&img).unwrap() == o.stdout, "file and pipe differ");
    let iid = fs::read_to_string(&iid).unwrap();
    assert!(iid.starts_with("sha256:") && iid.len() == 71, "{iid}");
    // A one-layer image where /gone is still there.
    let base_tag = format!("{name}:base");
    let base_img = t.path().join("base-img.tar");
    let o = run(dp().args(["image", "--tag", &base_tag]).arg(&base));
    fs::write(&base_img, &o.stdout).unwrap();

    // skopeo reads both views and reports what was written.
    let layers = [sha256_file(&base), sha256_file(&upper)];
    for transport in ["docker-archive", "oci-archive"] {
        let o = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("{transport}:{}", img.display())));
        let j = text(&o);
        assert!(
            j.contains("\"Architecture\": \"amd64\""),
            "{transport}: {j}"
        );
        for l in &layers {
            assert!(j.contains(&format!("sha256:{l}")), "{transport}: {j}");
        }
        let o = run(Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("{transport}:{}", img.display())));
        assert!(text(&o).contains("\"/init\""), "{}", text(&o));
    }

    // umoci unpacks the OCI layout to the source tree minus /gone.
    let oci = t.path().join("oci");
    run(dp()
        .args(["image", "--tag", &tag, "--oci-dir"])
        .arg(&oci)
        .arg(&base)
        .arg(&upper));
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", oci.display()))
        .arg(&bundle));
    let without_root = |l: String| -> Vec<String> {
        l.lines()
            .filter(|l| !l.starts_with(". "))
            .map(str::to_string)
            .collect()
    };
    fs::remove_file(root.join("gone")).unwrap();
    assert_eq!(
        without_root(list(&bundle.join("rootfs"))),
        without_root(list(&root))
    );
    eprintln!("skopeo inspect, umoci unpack: ok");

    // podman: load, run by tag; the whiteout hides /gone.
    let images = PodmanImages(vec![tag.clone(), base_tag.clone()]);
    let o = run(Command::new("podman").arg("load").arg("-i").arg(&img));
    assert!(
        text(&o).contains(&format!("docker.io/library/{tag}")),
        "{}",
        text(&o)
    );
    run(Command::new("podman").arg("load").arg("-i").arg(&base_img));
    let o = run(&mut in_cgroup2(&format!("{PODMAN_RUN} {tag}")));
    assert_eq!(text(&o), "Hello, world!\ngone: absent\n");
    let o = run(&mut in_cgroup2(&format!("{PODMAN_RUN} {base_tag}")));
    assert_eq!(text(&o), "Hello, world!\ngone: present\n");
    drop(images);
    eprintln!("podman load/run: ok");

    // A real registry: skopeo copy in, podman pull back, run.
    let registry = Registry::start(t.path());
    let port = registry.port;
    let remote = format!("127.0.0.1:{port}/{name}:1");
    let images = PodmanImages(vec![remote.clone()]);
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", img.display()))
        .arg(format!("docker://{remote}")));
    run(Command::new("podman").args(["pull", "--tls-verify=false", &remote]));
    let o = run(&mut in_cgroup2(&format!("{PODMAN_RUN} {remote}")));
    assert_eq!(text(&o), "Hello, world!\ngone: absent\n");
    drop(images);
    drop(registry);
    eprintln!("registry push/pull/run: ok");

    // A real Docker engine: load, run by tag and by the iidfile id.
    let d = t.path().join("docker");
    fs::create_dir(&d).unwrap();
    let sock = d.join("docker.sock");
    let child = in_cgroup2(&format!(
        "exec dockerd --storage-driver=vfs --iptables=false --ip-forward=false --bridge=none \
         --data-root {0}/data --exec-root {0}/exec -H unix://{1} --pidfile {0}/pid",
        d.display(),
        sock.display()
    ))
    .stdout(Stdio::null())
    .stderr(fs::File::create(d.join("dockerd.log")).unwrap())
    .spawn()
    .unwrap();
    let _dockerd = Service(child);
    let docker_bin = if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    let docker = || {
        let mut c = Command::new(docker_bin);
        c.env("DOCKER_HOST", format!("unix://{}", sock.display()));
        c
    };
    wait_for("dockerd", || {
        docker()
            .arg("info")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    let o = run(docker().arg("load").arg("-i").arg(&img));
    assert!(text(&o).contains(&tag), "{}", text(&o));
    let o = run(docker().args(["run", "--rm", "--network", "none", &tag]));
    assert_eq!(text(&o), "Hello, world!\ngone: absent\n");
    let o = run(docker().args(["run", "--rm", "--network", "none", &iid]));
    assert_eq!(text(&o), "Hello, world!\ngone: absent\n");
    eprintln!("docker load/run by tag and id: ok");
}
