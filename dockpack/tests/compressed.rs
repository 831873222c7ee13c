//! `dockpack image --compress`: the blobs and documents it writes, that
//! two builds agree byte for byte, and the real engines: skopeo, umoci,
//! podman, and a registry (distribution) round trip in which the registry
//! ends up holding our very blobs (docs/DESIGN.md "Image format").

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{dockpack, hello_tree, hex, in_cgroup2, layer, list, run, text, PODMAN_RUN};
use serde_json::Value;
use sha2::{Digest, Sha256};
use testkit::engines::{PodmanImages, Registry};
use testkit::{have, is_root, skip};

const METHODS: [(&str, &str); 2] = [
    ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
];

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The members of an image tar, by name (GNU-tar-independent: the `tar`
/// crate is not a dependency, and these tars are ustar written by us, so
/// a 512-byte header walk is enough for the test).
fn members(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &tar[at..at + 512];
        let name = String::from_utf8(h[..100].split(|&b| b == 0).next().unwrap().to_vec()).unwrap();
        let size_text = std::str::from_utf8(&h[124..136]).unwrap();
        let size = usize::from_str_radix(size_text.trim_matches(|c| c == '\0' || c == ' '), 8)
            .unwrap_or_else(|_| panic!("size of {name}: {size_text:?}"));
        let data = tar[at + 512..at + 512 + size].to_vec();
        out.insert(name, data);
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Decompresses with a decoder that is not the encoder's library: flate2
/// for gzip (one member, as `gzip -d` reads), ruzstd (pure Rust) for zstd.
fn decompress(method: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match method {
        "gzip" => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        "zstd" => ruzstd::decoding::StreamingDecoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        _ => unreachable!(),
    };
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Two layers of the hello tree (the second a small extra file), as
/// files, for the images below.
fn layers(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let root = hello_tree(dir, "Hello, compressed!");
    let base = dir.join("base.tar");
    layer(&root, &list(&root), &base);
    fs::write(root.join("extra"), "x".repeat(100_000)).unwrap();
    let upper = dir.join("upper.tar");
    layer(&root, &common::line(&root, "extra"), &upper);
    (root, vec![base, upper])
}

#[test]
fn compressed_blobs_diff_ids_and_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    let (_root, tars) = layers(t.path());
    let plain: Vec<Vec<u8>> = tars.iter().map(|p| fs::read(p).unwrap()).collect();
    // Nothing may be left in $TMPDIR, where the compressed layers wait.
    let tmp = t.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    for (method, media_type) in METHODS {
        let build = || {
            let o = dockpack()
                .env("TMPDIR", &tmp)
                .args(["image", "--tag", "hello:1", "--compress", method])
                .args(&tars)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        // Two builds through a pipe, one into a file: the same bytes.
        let a = build();
        assert!(a == build(), "{method}: two builds differ");
        let file = t.path().join(format!("{method}.tar"));
        let o = Command::new(assert_cmd::cargo::cargo_bin("dockpack"))
            .env_remove("SOURCE_DATE_EPOCH")
            .env("TMPDIR", &tmp)
            .args(["image", "--tag", "hello:1", "--compress", method])
            .args(&tars)
            .stdout(fs::File::create(&file).unwrap())
            .status()
            .unwrap();
        assert!(o.success());
        assert!(
            fs::read(&file).unwrap() == a,
            "{method}: file and pipe differ"
        );
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "left in $TMPDIR");

        let m = members(&a);
        let manifest_list = json(&m["manifest.json"]);
        let docker = &manifest_list[0];
        let index = json(&m["index.json"]);
        let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest_bytes = &m[&format!("blobs/sha256/{}", &manifest_digest[7..])];
        assert_eq!(sha(manifest_bytes), manifest_digest[7..]);
        let manifest = json(manifest_bytes);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = json(&m[&format!("blobs/sha256/{}", &config_digest[7..])]);
        let descriptors = manifest["layers"].as_array().unwrap();
        assert_eq!(descriptors.len(), 2);
        for (i, d) in descriptors.iter().enumerate() {
            assert_eq!(d["mediaType"], media_type, "{method}");
            let digest = &d["digest"].as_str().unwrap()[7..];
            let blob = &m[&format!("blobs/sha256/{digest}")];
            // The blob's digest and size are the compressed bytes'...
            assert_eq!(sha(blob), digest, "{method} layer {i}");
            assert_eq!(d["size"].as_u64().unwrap(), blob.len() as u64);
            assert!(
                blob.len() < plain[i].len(),
                "{method} layer {i} not smaller"
            );
            // ... which decompress to the layer tar as given, whose
            // digest is the diff_id.
            assert!(decompress(method, blob) == plain[i], "{method} layer {i}");
            assert_eq!(
                config["rootfs"]["diff_ids"][i],
                format!("sha256:{}", sha(&plain[i]))
            );
            // docker-archive's manifest.json names the same blobs.
            assert_eq!(docker["Layers"][i], format!("blobs/sha256/{digest}"));
        }
        if method == "gzip" {
            // RFC 1952: no FNAME flag, MTIME 0.
            let blob = &m[&format!(
                "blobs/sha256/{}",
                &descriptors[0]["digest"].as_str().unwrap()[7..]
            )];
            assert_eq!(&blob[..3], &[0x1f, 0x8b, 8]);
            assert_eq!(blob[3] & 0x08, 0, "gzip header has a name");
            assert_eq!(&blob[4..8], &[0, 0, 0, 0], "gzip header has an mtime");
        }
        // The config, and so the image id, is the one without
        // --compress: it names the diff_ids only.
        let uncompressed = dockpack()
            .args(["image", "--tag", "hello:1"])
            .args(&tars)
            .output()
            .unwrap();
        let um = members(&uncompressed.stdout);
        assert!(um.contains_key(&format!("blobs/sha256/{}", &config_digest[7..])));

        // --oci-dir writes the very same blobs and documents.
        let dir = t.path().join(format!("{method}.oci"));
        let o = dockpack()
            .env("TMPDIR", &tmp)
            .args([
                "image",
                "--tag",
                "hello:1",
                "--compress",
                method,
                "--oci-dir",
            ])
            .arg(&dir)
            .args(&tars)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for (name, bytes) in &m {
            if !name.ends_with('/') {
                assert!(
                    fs::read(dir.join(name)).unwrap() == *bytes,
                    "{method}: {name}"
                );
            }
        }
        // A different level gives other bytes, the same diff_ids.
        let level = if method == "gzip" {
            "gzip:1"
        } else {
            "zstd:19"
        };
        let o = dockpack()
            .args(["image", "--tag", "hello:1", "--compress", level])
            .args(&tars)
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(o.stdout != a, "{level} gave the bytes of {method}");
        assert!(members(&o.stdout).contains_key(&format!("blobs/sha256/{}", &config_digest[7..])));
    }
}

#[test]
fn bad_compress_specs_are_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let (_root, tars) = layers(t.path());
    for spec in [
        "lz4", "lz4:1", "gzip:10", "gzip:0", "zstd:20", "zstd:x", "xz", "", "gzip:",
    ] {
        let o = dockpack()
            .args(["image", "--compress", spec])
            .args(&tars)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "--compress {spec:?}");
        assert!(o.stdout.is_empty(), "--compress {spec:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("dockpack: --compress"), "{err}");
        assert!(!err.contains("os error"), "{err}");
    }
}

/// A failure while compressing leaves nothing: into a pipe (where the
/// layers wait in $TMPDIR) a missing or full $TMPDIR, into a file (where
/// they are compressed in place) a full filesystem; exit 1, one line, the
/// file cut back to empty, nothing left in $TMPDIR.
#[test]
fn a_failure_while_compressing_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (_root, tars) = layers(t.path());
    let o = dockpack()
        .env("TMPDIR", t.path().join("absent"))
        .args(["image", "--compress", "zstd"])
        .args(&tars)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot create a temporary file in"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    if !is_root() || !have("mount") {
        skip("a size-limited tmpfs needs root");
        return;
    }
    // A tmpfs too small for the compressed base layer.
    let small = t.path().join("small");
    fs::create_dir(&small).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "none"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    for method in ["gzip", "zstd"] {
        let o = dockpack()
            .env("TMPDIR", &small)
            .args(["image", "--compress", method])
            .args(&tars)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("No space left on device"), "{err}");
        assert_eq!(fs::read_dir(&small).unwrap().count(), 0);
        // The image into a file on the full filesystem.
        let out = small.join("img.tar");
        let o = Command::new(assert_cmd::cargo::cargo_bin("dockpack"))
            .env("TMPDIR", t.path())
            .args(["image", "--compress", method])
            .args(&tars)
            .stdout(fs::File::create(&out).unwrap())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("writing the image to stdout: No space left on device"),
            "{err}"
        );
        assert_eq!(
            fs::metadata(&out).unwrap().len(),
            0,
            "{method}: output left"
        );
        fs::remove_file(&out).unwrap();
    }
}

// The engines.

/// `podman run IMAGE` ([`common::PODMAN_RUN`]).
fn podman_run(image: &str) -> Command {
    in_cgroup2(&format!("{PODMAN_RUN} {image}"))
}

/// What `podman run IMAGE` prints. A run that exits 0 having printed
/// nothing is run again (twice at most): podman 4.3 here once lost a
/// short-lived container's output that way (one run in five), while the
/// same image printed its line on every other run; a wrong line or a
/// failure is never retried.
fn podman_output(image: &str) -> String {
    for _ in 0..3 {
        let o = run(&mut podman_run(image));
        if !o.stdout.is_empty() {
            return text(&o);
        }
        eprintln!("note: podman run {image} printed nothing; running it again");
    }
    String::new()
}

/// The layer descriptors (digest, media type) of an image manifest.
fn layer_descriptors(manifest: &Value) -> Vec<(String, String)> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_string(),
                d["mediaType"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `$UMOCI` (a umoci that knows zstd layers, which .ci/run provides), else
/// the `umoci` on PATH.
fn umoci() -> std::ffi::OsString {
    std::env::var_os("UMOCI").unwrap_or_else(|| "umoci".into())
}

#[test]
fn engines_take_compressed_images_and_the_registry_keeps_our_blobs() {
    if !is_root() {
        skip("podman, umoci and the registry need root here");
        return;
    }
    for tool in [
        "podman",
        "skopeo",
        "umoci",
        "docker-registry",
        "cc",
        "unshare",
    ] {
        if !have(tool) {
            skip(format!("{tool} is not installed (see .ci/run)"));
            return;
        }
    }
    let t = tempfile::tempdir().unwrap();
    let (root, tars) = layers(t.path());
    let name = format!("dockpack-compressed-{}", std::process::id());

    // One registry for both methods: storage in the temp dir.
    let registry = Registry::start(t.path());
    let (port, storage) = (registry.port, registry.storage.clone());
    let mut images = PodmanImages::default();

    for (method, media_type) in METHODS {
        let tag = format!("{name}:{method}");
        let img = t.path().join(format!("{method}.tar"));
        let mut build = Command::new(assert_cmd::cargo::cargo_bin("dockpack"));
        build
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["image", "--tag", &tag, "--compress", method])
            .args(&tars)
            .stdout(fs::File::create(&img).unwrap());
        run(&mut build);
        let m = members(&fs::read(&img).unwrap());
        let index = json(&m["index.json"]);
        let our_manifest = m[&format!(
            "blobs/sha256/{}",
            &index["manifests"][0]["digest"].as_str().unwrap()[7..]
        )]
            .clone();
        let ours = layer_descriptors(&json(&our_manifest));
        assert!(ours.iter().all(|(_, mt)| mt == media_type));

        // skopeo reads both faces: the OCI one with our compressed
        // digests, the docker-archive one as the diff_ids.
        let o = run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", img.display())));
        assert_eq!(layer_descriptors(&json(&o.stdout)), ours, "{method}");
        let o = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", img.display())));
        let inspected = json(&o.stdout);
        for (i, tar) in tars.iter().enumerate() {
            assert_eq!(
                inspected["Layers"][i],
                format!("sha256:{}", sha(&fs::read(tar).unwrap())),
                "{method}"
            );
        }

        // umoci unpacks the layout to the tree.
        let oci = t.path().join(format!("{method}.oci"));
        let o = dockpack()
            .args(["image", "--tag", &tag, "--compress", method, "--oci-dir"])
            .arg(&oci)
            .args(&tars)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bundle = t.path().join(format!("{method}.bundle"));
        let without_root = |l: String| -> Vec<String> {
            l.lines()
                .filter(|l| !l.starts_with(". "))
                .map(str::to_string)
                .collect()
        };
        let o = Command::new(umoci())
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{method}", oci.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if method == "zstd" && !o.status.success() && err.contains("not correct mediatype") {
            // umoci 0.4.7 (Debian 12) knows only the gzip and plain layer
            // media types; zstd came with umoci 0.5 (.ci/run fetches
            // Debian's 0.6 into $UMOCI).
            skip(format!(
                "umoci unpack of the zstd image: this umoci has no zstd (set UMOCI to umoci 0.5 or later, as .ci/run does): {}",
                err.trim()
            ));
        } else {
            assert!(o.status.success(), "umoci unpack ({method}): {err}");
            assert_eq!(
                without_root(list(&bundle.join("rootfs"))),
                without_root(list(&root)),
                "{method}"
            );
        }

        // podman loads and runs it.
        images.0.push(tag.clone());
        let o = run(Command::new("podman").arg("load").arg("-i").arg(&img));
        assert!(text(&o).contains(&tag), "{}", text(&o));
        assert_eq!(podman_output(&tag), "Hello, compressed!\n");

        // The registry round trip. From `docker-archive:` skopeo 1.9
        // presents the layers uncompressed and pushes its own gzip (and
        // with --preserve-digests the plain tar labelled gzip); from
        // `oci-archive:` it pushes our blobs and manifest as they are,
        // unless the registry already holds another compression of the
        // same diff_id (here: the gzip push before the zstd one), which it
        // then reuses, rewriting the manifest: --preserve-digests stops
        // that (without it this test fails at the zstd push).
        let remote = format!("127.0.0.1:{port}/{name}:{method}");
        run(Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci-archive:{}", img.display()))
            .arg(format!("docker://{remote}")));
        // What the registry stores: the manifest its tag points at, read
        // from its storage directory (distribution's filesystem layout:
        // repositories/NAME/_manifests/tags/TAG/current/link holds
        // `sha256:<digest>`, blobs under blobs/sha256/XX/<digest>/data).
        let v2 = storage.join("docker/registry/v2");
        let link = fs::read_to_string(
            v2.join("repositories")
                .join(&name)
                .join("_manifests/tags")
                .join(method)
                .join("current/link"),
        )
        .unwrap();
        let blob_path = |digest: &str| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            v2.join("blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data")
        };
        let stored = fs::read(blob_path(link.trim())).unwrap();
        assert_eq!(
            layer_descriptors(&json(&stored)),
            ours,
            "{method}: registry manifest"
        );
        assert!(
            stored == our_manifest,
            "{method}: the registry's manifest is not ours"
        );
        for (digest, _) in &ours {
            let data = fs::read(blob_path(digest)).unwrap();
            assert_eq!(format!("sha256:{}", sha(&data)), *digest);
            assert!(
                m[&format!("blobs/sha256/{}", &digest[7..])] == data,
                "{method}: the registry's blob is not ours"
            );
        }
        // podman pulls it back and runs it.
        images.0.push(remote.clone());
        run(Command::new("podman").args(["pull", "-q", "--tls-verify=false", &remote]));
        assert_eq!(podman_output(&remote), "Hello, compressed!\n");
        eprintln!("{method}: skopeo inspect, umoci, podman load/run, registry push/pull/run: ok");
    }
    drop(images);
    drop(registry);
}
