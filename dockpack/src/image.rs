//! `dockpack image`: layer tars in, one image out.
//!
//! The output is what `docker save` writes since Docker 25: an OCI image
//! layout (image-spec `image-layout.md`: `oci-layout`, `index.json`,
//! `blobs/sha256/…`) plus the docker-archive `manifest.json` pointing at
//! the same blobs, so `docker load` (20.10 to 29), `podman load`,
//! `skopeo … docker-archive:`/`oci-archive:` and `umoci` all read it.
//!
//! Every layer is read twice and hashed once: the first pass checks that
//! it is a whole tar (all before the first byte of output, so a bad layer
//! never leaves something loadable) and computes its digest, which is
//! both the blob name and the diff_id (layers are stored uncompressed);
//! the second pass copies it into the output, by `copy_file_range`/
//! `sendfile` where the kernel can. Each blob is a regular member, once
//! (Docker 29's importer takes only regular files and symlinks).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::reference::{self, Reference};
use crate::tarfmt::{self, Kind, Member};

/// What `dockpack image` was asked to build.
#[derive(Debug, Default, Clone)]
pub struct ImageOptions {
    pub tags: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<String>,
    pub arch: Option<String>,
    pub layers: Vec<PathBuf>,
    pub epoch: u64,
}

/// One layer after the checking pass.
struct Layer {
    path: PathBuf,
    file: File,
    size: u64,
    digest: String,
    /// (ino, mtime, mtime_nsec, ctime, ctime_nsec): the copy pass refuses
    /// a layer that changed after it was hashed.
    identity: (u64, i64, i64, i64, i64),
}

fn identity(m: &fs::Metadata) -> (u64, i64, i64, i64, i64) {
    (
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn discard<R: Read>(r: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "archive ends inside a member's data (truncated?)",
        ));
    }
    Ok(())
}

/// Opens, checks and hashes one layer.
fn check_layer(path: &Path) -> Result<Layer> {
    let mut file =
        File::open(path).with_context(|| format!("cannot open layer {}", path.display()))?;
    let mut meta = file
        .metadata()
        .with_context(|| format!("cannot stat layer {}", path.display()))?;
    if !meta.is_file() {
        // A pipe (`dockpack image <(dockpack layer …)`) can be read only
        // once, and the blob's name (its digest) comes before its bytes
        // in the tar: keep a private copy in $TMPDIR.
        let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
        io::copy(&mut file, &mut spool)
            .with_context(|| format!("reading layer {}", path.display()))?;
        spool.rewind().context("rewinding a temporary file")?;
        file = spool;
        meta = file.metadata().context("cannot stat a temporary file")?;
    }
    let mut reader = BufReader::with_capacity(
        1 << 20,
        Hashing {
            inner: &file,
            hasher: Sha256::new(),
            count: 0,
        },
    );
    tarfmt::walk(&mut reader, discard, |_, _| Ok(true))
        .map_err(|e| anyhow!("layer {}: {e}", path.display()))?;
    // Whatever follows the end marker (GNU tar pads to 10 KiB records) is
    // part of the blob too.
    io::copy(&mut reader, &mut io::sink())
        .with_context(|| format!("reading layer {}", path.display()))?;
    let hashing = reader.into_inner();
    let digest: [u8; 32] = hashing.hasher.finalize().into();
    Ok(Layer {
        path: path.to_path_buf(),
        size: hashing.count,
        digest: filelist::hex::encode(&digest),
        identity: identity(&meta),
        file,
    })
}

// The JSON documents. Hand-written rather than `oci-spec`'s types: those
// keep labels and annotations in `HashMap`s, whose order changes from run
// to run, and the bytes of these documents are their digests. Field order
// follows the image spec's examples; maps are `BTreeMap`s.

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'static str,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'static str,
    config: RunConfig<'a>,
    rootfs: RootFs,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest<'a> {
    config: String,
    repo_tags: Vec<&'a str>,
    layers: Vec<String>,
}

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The OCI `GOARCH` name of the machine we run on.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Everything decided before the first byte of output.
pub struct Plan {
    layers: Vec<Layer>,
    refs: Vec<Reference>,
    config: Vec<u8>,
    config_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    index: Vec<u8>,
    docker_manifest: Vec<u8>,
    pub arch: String,
}

impl Plan {
    /// `sha256:<hex>` of the config: the image id `docker images` shows.
    pub fn image_id(&self) -> String {
        format!("sha256:{}", self.config_digest)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d: [u8; 32] = Sha256::digest(bytes).into();
    filelist::hex::encode(&d)
}

/// Checks every input and computes every document.
pub fn plan(opts: &ImageOptions) -> Result<Plan> {
    if opts.layers.is_empty() {
        bail!("no layers given: an image needs at least one layer tar");
    }
    let refs = opts
        .tags
        .iter()
        .map(|t| reference::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!(e))?;
    for e in &opts.env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => bail!("--env {e:?}: expected KEY=VALUE"),
        }
    }
    let mut labels = BTreeMap::new();
    for l in &opts.labels {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k, v);
            }
            _ => bail!("--label {l:?}: expected KEY=VALUE"),
        }
    }
    if let Some(a) = &opts.arch {
        if a.is_empty() || !a.bytes().all(|c| c.is_ascii_alphanumeric()) {
            bail!("--arch {a:?}: expected a GOARCH name such as amd64 or arm64");
        }
    }
    let mut layers = Vec::with_capacity(opts.layers.len());
    for path in &opts.layers {
        layers.push(check_layer(path)?);
    }
    let cmd: Vec<String> = if opts.cmd.is_empty() && opts.entrypoint.is_empty() {
        // The cookbook's convention: every image runs /init.
        vec!["/init".to_string()]
    } else {
        opts.cmd.clone()
    };
    let arch = match &opts.arch {
        Some(a) => a.clone(),
        None => {
            let program = opts.entrypoint.first().or(cmd.first());
            let found = match program {
                Some(p) => crate::arch::detect(&mut layers_files(&layers)?, p)?,
                None => None,
            };
            found.unwrap_or_else(host_arch).to_string()
        }
    };
    let created = rfc3339(opts.epoch);
    let config = ImageConfig {
        created: &created,
        architecture: &arch,
        os: "linux",
        config: RunConfig {
            user: opts.user.as_deref(),
            env: &opts.env,
            entrypoint: &opts.entrypoint,
            cmd: &cmd,
            working_dir: opts.workdir.as_deref(),
            labels,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers
                .iter()
                .map(|l| format!("sha256:{}", l.digest))
                .collect(),
        },
        history: layers
            .iter()
            .map(|_| History {
                created: &created,
                created_by: "dockpack layer",
            })
            .collect(),
    };
    let config = serde_json::to_vec(&config).context("encoding the image config")?;
    let config_digest = sha256_hex(&config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: MT_MANIFEST,
        config: Descriptor {
            media_type: MT_CONFIG,
            digest: format!("sha256:{config_digest}"),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: MT_LAYER,
                digest: format!("sha256:{}", l.digest),
                size: l.size,
                annotations: BTreeMap::new(),
            })
            .collect(),
    };
    let manifest = serde_json::to_vec(&manifest).context("encoding the manifest")?;
    let manifest_digest = sha256_hex(&manifest);
    let descriptor = |annotations| Descriptor {
        media_type: MT_MANIFEST,
        digest: format!("sha256:{manifest_digest}"),
        size: manifest.len() as u64,
        annotations,
    };
    // One index entry per tag, as `docker save` writes: containerd's
    // full name and the tag alone as the OCI ref name (what `skopeo …
    // oci:DIR:TAG` and `umoci --image DIR:TAG` select by).
    let manifests = if refs.is_empty() {
        vec![descriptor(BTreeMap::new())]
    } else {
        refs.iter()
            .map(|r| {
                descriptor(BTreeMap::from([
                    ("io.containerd.image.name", r.full.clone()),
                    ("org.opencontainers.image.ref.name", r.tag.clone()),
                ]))
            })
            .collect()
    };
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: MT_INDEX,
        manifests,
    })
    .context("encoding index.json")?;
    let docker_manifest = serde_json::to_vec(&[DockerManifest {
        config: format!("blobs/sha256/{config_digest}"),
        repo_tags: refs.iter().map(|r| r.familiar.as_str()).collect(),
        layers: layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", l.digest))
            .collect(),
    }])
    .context("encoding manifest.json")?;
    Ok(Plan {
        layers,
        refs,
        config,
        config_digest,
        manifest,
        manifest_digest,
        index,
        docker_manifest,
        arch,
    })
}

fn layers_files(layers: &[Layer]) -> Result<Vec<(PathBuf, File)>> {
    layers
        .iter()
        .map(|l| {
            Ok((
                l.path.clone(),
                l.file
                    .try_clone()
                    .with_context(|| format!("reopening layer {}", l.path.display()))?,
            ))
        })
        .collect()
}

/// Rewinds a layer and checks it is the file that was hashed.
fn reopen(layer: &Layer) -> Result<&File> {
    let now = layer
        .file
        .metadata()
        .with_context(|| format!("cannot stat layer {}", layer.path.display()))?;
    if identity(&now) != layer.identity || now.len() != layer.size {
        bail!(
            "layer {} changed while the image was being written",
            layer.path.display()
        );
    }
    (&layer.file)
        .seek(SeekFrom::Start(0))
        .with_context(|| format!("reading layer {}", layer.path.display()))?;
    Ok(&layer.file)
}

/// Copies a layer into `out`. `io::copy` from a `File` to a file, a
/// pipe or a `BufWriter` over either runs in the kernel
/// (`copy_file_range`, `splice`, `sendfile`): no pass through user space.
fn copy_layer<W: Write>(layer: &Layer, out: &mut W) -> Result<()> {
    let file = reopen(layer)?;
    let copied = io::copy(&mut file.take(layer.size), out).context("writing the image")?;
    if copied != layer.size {
        bail!("layer {} shrank while being copied", layer.path.display());
    }
    Ok(())
}

impl Plan {
    /// The members of the image, in the order `docker save` writes them
    /// (sorted by name); each blob once.
    fn blobs(&self) -> Vec<(String, Blob<'_>)> {
        let mut blobs: BTreeMap<String, Blob<'_>> = BTreeMap::new();
        for l in &self.layers {
            blobs.entry(l.digest.clone()).or_insert(Blob::Layer(l));
        }
        blobs.insert(self.config_digest.clone(), Blob::Bytes(&self.config));
        blobs.insert(self.manifest_digest.clone(), Blob::Bytes(&self.manifest));
        blobs.into_iter().collect()
    }

    /// Writes the image as one tar to `out`.
    pub fn write_tar<W: Write>(&self, epoch: u64, out: &mut W) -> Result<()> {
        let dir = |name: &'static [u8]| Member {
            name,
            kind: Kind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: epoch,
            link: b"",
            major: 0,
            minor: 0,
        };
        let w = |e: io::Error| anyhow::Error::new(e).context("writing the image");
        tarfmt::write_header(out, &dir(b"blobs/")).map_err(w)?;
        tarfmt::write_header(out, &dir(b"blobs/sha256/")).map_err(w)?;
        for (digest, blob) in self.blobs() {
            let name = format!("blobs/sha256/{digest}");
            let size = match blob {
                Blob::Layer(l) => l.size,
                Blob::Bytes(b) => b.len() as u64,
            };
            let m = file_member(name.as_bytes(), size, epoch);
            tarfmt::write_header(out, &m).map_err(w)?;
            match blob {
                Blob::Layer(l) => copy_layer(l, out)?,
                Blob::Bytes(b) => out.write_all(b).map_err(w)?,
            }
            out.write_all(&[0u8; tarfmt::BLOCK][..tarfmt::padding(size)])
                .map_err(w)?;
        }
        for (name, bytes) in [
            (&b"index.json"[..], &self.index[..]),
            (b"manifest.json", &self.docker_manifest),
            (b"oci-layout", OCI_LAYOUT),
        ] {
            let size = bytes.len() as u64;
            tarfmt::write_header(out, &file_member(name, size, epoch)).map_err(w)?;
            out.write_all(bytes).map_err(w)?;
            out.write_all(&[0u8; tarfmt::BLOCK][..tarfmt::padding(size)])
                .map_err(w)?;
        }
        tarfmt::write_end(out).map_err(w)?;
        out.flush().map_err(w)
    }

    /// Writes the layout into a new directory `dest`: built in a sibling
    /// temporary directory and renamed into place at the end, so a
    /// failure leaves nothing that looks like an image.
    pub fn write_dir(&self, dest: &Path) -> Result<()> {
        if let Ok(mut entries) = fs::read_dir(dest) {
            if entries.next().is_some() {
                bail!(
                    "--oci-dir {}: directory exists and is not empty",
                    dest.display()
                );
            }
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = dest
            .file_name()
            .ok_or_else(|| anyhow!("--oci-dir {}: not a directory name", dest.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", base.to_string_lossy()))
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
        let blobs = tmp.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
        for (digest, blob) in self.blobs() {
            let path = blobs.join(&digest);
            let mut f =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            match blob {
                Blob::Layer(l) => copy_layer(l, &mut f)?,
                Blob::Bytes(b) => f
                    .write_all(b)
                    .with_context(|| format!("writing {}", path.display()))?,
            }
        }
        for (name, bytes) in [
            ("oci-layout", OCI_LAYOUT),
            ("manifest.json", &self.docker_manifest[..]),
            ("index.json", &self.index[..]),
        ] {
            let path = tmp.path().join(name);
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        let _ = fs::remove_dir(dest); // an empty directory is replaced
        fs::rename(tmp.path(), dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))?;
        let _ = tmp.keep();
        Ok(())
    }

    /// The tags, as `docker images` shows them.
    pub fn repo_tags(&self) -> Vec<&str> {
        self.refs.iter().map(|r| r.familiar.as_str()).collect()
    }
}

enum Blob<'a> {
    Layer(&'a Layer),
    Bytes(&'a [u8]),
}

fn file_member(name: &[u8], size: u64, epoch: u64) -> Member<'_> {
    Member {
        name,
        kind: Kind::Regular,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        mtime: epoch,
        link: b"",
        major: 0,
        minor: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_are_spooled() {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("head -c 1024 /dev/zero")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(child.stdout.as_ref().unwrap());
        let layer = check_layer(Path::new(&format!("/proc/self/fd/{fd}"))).unwrap();
        child.wait().unwrap();
        // Two zero blocks are an empty tar.
        assert_eq!(layer.size, 1024);
        assert_eq!(layer.digest, sha256_hex(&[0u8; 1024]));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
