//! The cookbook's `NAME.push` (scripts/default.push.do) against a real
//! registry (distribution, on 127.0.0.1): without $REGISTRY it refuses
//! before building anything of its own; with it, the registry's tag
//! points at the very manifest inside NAME.image, whose digest is the
//! product; podman pulls that digest and runs it. A change of $COMPRESS
//! rebuilds and pushes again without any file removed by hand, and
//! changes the blobs and the pushed digest, never the image id.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use pipeline_tests::support;
use testkit::engines::{PodmanImages, Registry};
use testkit::have;

/// `make TARGET` in `dir` with our binaries first on PATH, bounded.
fn make(dir: &Path, path: &std::ffi::OsStr, target: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("timeout");
    c.args(["300", "make", "--no-print-directory", target])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("REGISTRY")
        .env_remove("PUSH_FLAGS")
        .env_remove("COMPRESS")
        .env_remove("MAKEFLAGS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A member of the image tar.
fn member(image: &Path, name: &str) -> String {
    let o = Command::new("tar")
        .arg("-xOf")
        .arg(image)
        .arg(name)
        .output()
        .unwrap();
    ok(&o, &format!("tar -xOf {name}"));
    String::from_utf8(o.stdout).unwrap()
}

/// The first `"digest":"sha256:…"` in `json` (index.json's manifest).
fn first_digest(json: &str) -> String {
    let at = json.find("\"digest\":\"").expect("no digest") + 10;
    json[at..at + 71].to_string()
}

#[test]
fn push_to_a_local_registry() {
    if !support::is_root() {
        support::skip("podman and the registry need root here");
        return;
    }
    for tool in [
        "make",
        "skopeo",
        "docker-registry",
        "podman",
        "unshare",
        "cc",
    ] {
        if !have(tool) {
            support::skip(format!("{tool} is not installed (see .ci/run)"));
            return;
        }
    }
    let bins = support::binaries().unwrap_or_else(|e| panic!("{e}"));
    let path = support::path_with(&bins);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("scripts");
    fs::create_dir(&dir).unwrap();
    support::copy_scripts(&dir).unwrap_or_else(|e| panic!("{e}"));

    // No $REGISTRY: one clear message, no product.
    let o = make(&dir, &path, "simple.push", &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("simple.push: REGISTRY is not set"), "{err}");
    assert!(!dir.join("simple.push").exists());

    let server = Registry::start(t.path());
    let (port, storage) = (server.port, server.storage.clone());
    let mut images = PodmanImages::default();
    let registry = format!("127.0.0.1:{port}/cookbook");
    let repo = storage.join("docker/registry/v2/repositories/cookbook/simple");
    let image = dir.join("simple.image");

    let mut pushed = Vec::new();
    for compress in ["", "zstd"] {
        let env = [
            ("REGISTRY", registry.as_str()),
            ("PUSH_FLAGS", "--dest-tls-verify=false"),
            ("COMPRESS", compress),
        ];
        // $COMPRESS is a dependency (scripts/default.setting.do): a new
        // value rebuilds the image and pushes it again, by itself.
        let o = make(&dir, &path, "simple.push", &env);
        ok(&o, &format!("make simple.push (COMPRESS={compress:?})"));
        let digest = fs::read_to_string(dir.join("simple.push")).unwrap();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest:?}"
        );
        // The product is the digest of the manifest in simple.image, and
        // the registry's tag points at it.
        let index = member(&image, "index.json");
        assert_eq!(first_digest(&index), digest, "{index}");
        let link = fs::read_to_string(repo.join("_manifests/tags/latest/current/link")).unwrap();
        assert_eq!(link.trim(), digest);
        // The layers the manifest names are in the registry as they are
        // in the image.
        let manifest = member(&image, &format!("blobs/sha256/{}", &digest[7..]));
        // The default is gzip (scripts/default.image.do says why).
        let want = if compress == "zstd" {
            "tar+zstd"
        } else {
            "tar+gzip"
        };
        assert!(manifest.contains(want), "COMPRESS={compress:?}: {manifest}");
        for part in manifest.split("\"digest\":\"sha256:").skip(1) {
            let d = &part[..64];
            assert!(
                repo.join("_layers/sha256").join(d).exists(),
                "{d} not in the registry"
            );
        }
        // podman pulls it by digest and runs it.
        let by_digest = format!("{registry}/simple@{digest}");
        images.0.push(by_digest.clone());
        let o = Command::new("timeout")
            .args([
                "300",
                "podman",
                "pull",
                "-q",
                "--tls-verify=false",
                &by_digest,
            ])
            .output()
            .unwrap();
        ok(&o, "podman pull");
        // A run that exits 0 having printed nothing is run again (twice
        // at most): podman 4.3 here has lost a short-lived container's
        // output that way; a wrong line or a failure is never retried.
        let mut printed = String::new();
        for _ in 0..3 {
            let o = Command::new("timeout")
                .args(["120", "unshare", "-m", "sh", "-c"])
                .arg(format!(
                    "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && \
                     podman run --rm --cgroups=disabled --ulimit nofile=1024:1024 \
                     --ulimit nproc=1024:1024 --network none {by_digest}"
                ))
                .output()
                .unwrap();
            ok(&o, "podman run");
            printed = String::from_utf8_lossy(&o.stdout).into_owned();
            if !printed.is_empty() {
                break;
            }
            eprintln!("note: podman run {by_digest} printed nothing; running it again");
        }
        assert_eq!(printed, "Hello, world!\n");
        pushed.push((digest, fs::read_to_string(dir.join("simple.iid")).unwrap()));
        // The same settings again: nothing is rebuilt or pushed.
        let times = || {
            ["simple.image", "simple.push"].map(|n| {
                fs::metadata(dir.join(n))
                    .and_then(|m| m.modified())
                    .unwrap()
            })
        };
        let before = times();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let o = make(&dir, &path, "simple.push", &env);
        ok(
            &o,
            &format!("make simple.push again (COMPRESS={compress:?})"),
        );
        assert_eq!(times(), before, "an unchanged $COMPRESS rebuilt something");
    }
    // Another compression: another manifest, the same image id.
    assert_ne!(pushed[0].0, pushed[1].0);
    assert_eq!(pushed[0].1, pushed[1].1);
    drop(images);
    drop(server);
}
