//! `dockpack image`: layer tars in, one image out.
//!
//! The output is what `docker save` writes since Docker 25: an OCI image
//! layout (image-spec `image-layout.md`: `oci-layout`, `index.json`,
//! `blobs/sha256/…`) plus the docker-archive `manifest.json` pointing at
//! the same blobs, so `docker load` (20.10 to 29), `podman load`,
//! `skopeo … docker-archive:`/`oci-archive:` and `umoci` all read it.
//! Each blob is a regular member, once (Docker 29's importer takes only
//! regular files and symlinks).
//!
//! Member order: `blobs/`, `blobs/sha256/`, the layer blobs in manifest
//! order (a layer given twice is stored once, where it first appears),
//! the config blob, the manifest blob, `index.json`, `manifest.json`,
//! `oci-layout`. The config and manifest name every layer digest, so they
//! come after the layers; and since the documents that make an image
//! loadable come last, output cut short anywhere is no image.
//!
//! A layer's digest is both its blob name and its diff_id (layers are
//! stored uncompressed), and in a tar the name comes before the data.
//! How each layer is read ([`crate::layerpass`]: once, checked as a tar
//! and hashed on one thread while another reads and writes it) depends on
//! where the image goes:
//!
//! - stdout is a regular file, not `O_APPEND`, with nothing after its
//!   offset (`> FILE`, or appended to by a shell group): ONE pass per
//!   layer. The header slot (512 bytes, more when the size needs pax) is
//!   reserved, the layer's bytes are `pwrite`n after it as they are
//!   hashed, and the header goes into its slot once the digest is known.
//!   Until then the slot holds a block no tar reader accepts, so even a
//!   killed run leaves no valid tar. On any error the file is truncated
//!   back to the offset it had when we started: nothing of ours remains.
//!   A layer found to repeat an earlier one is dropped by writing over it.
//! - anything else (a pipe, a socket, a terminal, `O_APPEND`, a file with
//!   bytes after the offset that are not ours to cut): TWO passes. Every
//!   layer is checked and hashed before the first byte goes out, then
//!   copied by `copy_file_range`/`splice`; a layer that changed in between
//!   is refused, and an error after the first byte ends the stream with a
//!   block no tar reader accepts ([`tarfmt::poison_block`]).
//! - `--oci-dir`: one pass per layer into a blob file under a temporary
//!   name in a temporary directory, renamed to its digest, the directory
//!   renamed into place at the end.
//!
//! Both tar paths produce the same bytes from [`Image::head`],
//! [`blob_header`] and [`Image::tail`], so a pipe and a file agree.
//!
//! `--compress` (docs/DESIGN.md "Image format"): a compressed blob's
//! digest and size are known only after compressing, and its header
//! comes first. Into a regular file as above, each layer is compressed
//! (and checked and hashed in the same pass) into place after a header
//! slot of one block, which its blob surely fits below 8 GiB
//! ([`fits_one_block`]). Into a pipe (or with a layer that large), every
//! layer is first compressed into an unnamed temporary file, then copied
//! ([`compress_all`]). `--oci-dir` compresses straight into the blob file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use filtertool::quote::{quote, quote_path};

use compress::{Encoder, Method, Spec};

use crate::layerpass::{self, Hashed, LayerFile};
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
    /// `--compress`: layer blobs compressed with this, else stored as
    /// given.
    pub compress: Option<Spec>,
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
const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
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

/// The layer media type of blobs compressed with `spec` (image-spec
/// `layer.md`, "Media Types"): gzip and zstd have one; lz4 has none, so
/// no engine would know how to unpack such a layer.
pub fn compressed_media_type(spec: &Spec) -> Result<&'static str, String> {
    match spec.method {
        Method::Gzip => Ok(MT_LAYER_GZIP),
        Method::Zstd => Ok(MT_LAYER_ZSTD),
        Method::Lz4 => Err(format!(
            "--compress {}: not an OCI layer compression (use gzip or zstd)",
            spec.name()
        )),
    }
}

/// The options checked and the layers opened: everything that can be
/// refused without reading the layers, before the first byte of output.
pub struct Inputs<'a> {
    opts: &'a ImageOptions,
    refs: Vec<Reference>,
    cmd: Vec<String>,
    layers: Vec<LayerFile>,
}

/// Checks a `KEY=VALUE` of option `option` (`--env`, `--label`): the key
/// must not be empty.
pub fn check_key_value(option: &str, text: &str) -> Result<(), String> {
    match text.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(()),
        _ => Err(format!(
            "{option} {}: expected KEY=VALUE",
            quote(text.as_bytes())
        )),
    }
}

/// Checks the options and opens every layer.
pub fn prepare(opts: &ImageOptions) -> Result<Inputs<'_>> {
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
        check_key_value("--env", e).map_err(|e| anyhow!(e))?;
    }
    for l in &opts.labels {
        check_key_value("--label", l).map_err(|e| anyhow!(e))?;
    }
    if let Some(a) = &opts.arch {
        crate::arch::check_goarch(a).map_err(|e| anyhow!(e))?;
    }
    if let Some(spec) = &opts.compress {
        compressed_media_type(spec).map_err(|e| anyhow!(e))?;
    }
    let layers = opts
        .layers
        .iter()
        .map(|p| LayerFile::open(p))
        .collect::<Result<Vec<_>>>()?;
    let cmd: Vec<String> = if opts.cmd.is_empty() && opts.entrypoint.is_empty() {
        // The cookbook's convention: every image runs /init.
        vec!["/init".to_string()]
    } else {
        opts.cmd.clone()
    };
    Ok(Inputs {
        opts,
        refs,
        cmd,
        layers,
    })
}

/// A layer as the image names it: its diff_id (the digest of the tar as
/// given, what `rootfs.diff_ids` lists) and the blob stored for it (that
/// tar, or the tar compressed: image-spec `config.md`, "layer DiffID").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// Lowercase hex SHA-256 of the layer tar.
    pub diff_id: String,
    /// Lowercase hex SHA-256 of the blob, and its size.
    pub digest: String,
    pub size: u64,
    pub media_type: &'static str,
}

impl LayerBlob {
    /// A layer stored as given: blob and diff_id are one.
    fn plain(h: Hashed) -> LayerBlob {
        LayerBlob {
            diff_id: h.digest.clone(),
            digest: h.digest,
            size: h.size,
            media_type: MT_LAYER,
        }
    }
}

/// The image's documents, computed once every layer is hashed.
pub struct Image {
    layers: Vec<LayerBlob>,
    repo_tags: Vec<String>,
    config: Vec<u8>,
    config_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    index: Vec<u8>,
    docker_manifest: Vec<u8>,
    epoch: u64,
    pub arch: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d: [u8; 32] = Sha256::digest(bytes).into();
    filelist::hex::encode(&d)
}

fn layers_files(layers: &[LayerFile]) -> Result<Vec<(PathBuf, File)>> {
    layers
        .iter()
        .map(|l| {
            Ok((
                l.path.clone(),
                l.file
                    .try_clone()
                    .with_context(|| format!("reopening layer {}", quote_path(&l.path)))?,
            ))
        })
        .collect()
}

/// The architecture: `--arch`, else that of the ELF program that
/// Entrypoint or Cmd names in the layers ([`crate::arch`]), else the
/// host's.
fn find_arch(inputs: &Inputs<'_>) -> Result<String> {
    let opts = inputs.opts;
    if let Some(a) = &opts.arch {
        return Ok(a.clone());
    }
    let program = opts.entrypoint.first().or(inputs.cmd.first());
    let found = match program {
        Some(p) => crate::arch::detect(&mut layers_files(&inputs.layers)?, p)?,
        None => None,
    };
    Ok(found.unwrap_or_else(host_arch).to_string())
}

/// Runs `passes` (the reads of the layers) while the architecture is
/// looked up on another thread: the lookup walks every layer's headers
/// again (6-7 ms for the minbase tree's 200 MB layer), time that the
/// reading thread of a pass has spare. A failed pass is reported before
/// a failed lookup, which can only be the same bad tar seen again.
fn alongside_arch<T>(
    inputs: &Inputs<'_>,
    passes: impl FnOnce() -> Result<T>,
) -> Result<(T, String)> {
    if let Some(a) = &inputs.opts.arch {
        return Ok((passes()?, a.clone()));
    }
    std::thread::scope(|s| {
        let finder = s.spawn(|| find_arch(inputs));
        let done = passes();
        let arch = finder
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the architecture lookup failed")));
        Ok((done?, arch?))
    })
}

/// Computes every document from the inputs, the layers' digests and the
/// architecture.
fn documents(inputs: &Inputs<'_>, layers: Vec<LayerBlob>, arch: String) -> Result<Image> {
    let opts = inputs.opts;
    let cmd = &inputs.cmd;
    let labels: BTreeMap<&str, &str> = opts
        .labels
        .iter()
        .filter_map(|l| l.split_once('='))
        .collect();
    let created = rfc3339(opts.epoch);
    let config = ImageConfig {
        created: &created,
        architecture: &arch,
        os: "linux",
        config: RunConfig {
            user: opts.user.as_deref(),
            env: &opts.env,
            entrypoint: &opts.entrypoint,
            cmd,
            working_dir: opts.workdir.as_deref(),
            labels,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers
                .iter()
                .map(|l| format!("sha256:{}", l.diff_id))
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
                media_type: l.media_type,
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
    let refs = &inputs.refs;
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
    let repo_tags: Vec<String> = refs.iter().map(|r| r.familiar.clone()).collect();
    let docker_manifest = serde_json::to_vec(&[DockerManifest {
        config: format!("blobs/sha256/{config_digest}"),
        repo_tags: repo_tags.iter().map(String::as_str).collect(),
        layers: layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", l.digest))
            .collect(),
    }])
    .context("encoding manifest.json")?;
    Ok(Image {
        layers,
        repo_tags,
        config,
        config_digest,
        manifest,
        manifest_digest,
        index,
        docker_manifest,
        epoch: opts.epoch,
        arch,
    })
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

fn dir_member(name: &[u8], epoch: u64) -> Member<'_> {
    Member {
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
    }
}

/// The header of blob `digest` of `size` bytes: one 512-byte ustar
/// block (the name `blobs/sha256/<64 hex>` is 77 bytes), with a pax
/// header before it when the size does not fit 11 octal digits (8 GiB).
/// Its length depends on the size only.
pub fn blob_header(digest: &str, size: u64, epoch: u64) -> Vec<u8> {
    let name = format!("blobs/sha256/{digest}");
    let mut out = Vec::with_capacity(tarfmt::BLOCK);
    // Writing into a Vec cannot fail; the only refusal (device numbers)
    // does not apply to a regular member.
    let _ = tarfmt::write_header(&mut out, &file_member(name.as_bytes(), size, epoch));
    out
}

/// A member with its data and padding, appended to `out`.
fn push_member(out: &mut Vec<u8>, name: &[u8], data: &[u8], epoch: u64) {
    let size = data.len() as u64;
    let _ = tarfmt::write_header(out, &file_member(name, size, epoch));
    out.extend_from_slice(data);
    out.extend_from_slice(&[0u8; tarfmt::BLOCK][..tarfmt::padding(size)]);
}

impl Image {
    /// `sha256:<hex>` of the config: the image id `docker images` shows.
    pub fn image_id(&self) -> String {
        format!("sha256:{}", self.config_digest)
    }

    /// The tags, as `docker images` shows them.
    pub fn repo_tags(&self) -> Vec<&str> {
        self.repo_tags.iter().map(String::as_str).collect()
    }

    /// The members before the layer blobs: the two directories.
    pub fn head(epoch: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * tarfmt::BLOCK);
        for name in [&b"blobs/"[..], b"blobs/sha256/"] {
            let _ = tarfmt::write_header(&mut out, &dir_member(name, epoch));
        }
        out
    }

    /// Everything after the layer blobs, through the end-of-archive
    /// blocks. `stored` holds the digests of the blobs already written
    /// (a config equal to a layer would be stored once).
    pub fn tail(&self, stored: &BTreeSet<String>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stored = stored.clone();
        for (digest, bytes) in [
            (&self.config_digest, &self.config),
            (&self.manifest_digest, &self.manifest),
        ] {
            if stored.insert(digest.clone()) {
                let name = format!("blobs/sha256/{digest}");
                push_member(&mut out, name.as_bytes(), bytes, self.epoch);
            }
        }
        for (name, bytes) in [
            (&b"index.json"[..], &self.index[..]),
            (b"manifest.json", &self.docker_manifest),
            (b"oci-layout", OCI_LAYOUT),
        ] {
            push_member(&mut out, name, bytes, self.epoch);
        }
        let _ = tarfmt::write_end(&mut out);
        out
    }
}

/// Writes the image tar on stdout, in one pass over each layer where
/// stdout allows it (see the module comment), else in two.
pub fn write_stdout(inputs: &Inputs<'_>) -> Result<Image> {
    let stdout = io::stdout().lock();
    // Where stdout cannot even be inspected (closed: EBADF), it is
    // written as a stream, whose errors std and filtertool handle.
    let seekable = seekable_start(stdout.as_fd()).unwrap_or(None);
    let spec = inputs.opts.compress.as_ref();
    // Into a file, each layer is written (compressed or not) in place
    // after a reserved header slot, where the slot's size is known before:
    // always for a plain layer, for a compressed one where it is surely
    // one block. Else (a pipe, or a layer near 8 GiB) every compressed
    // layer goes into a file that vanishes with the process before the
    // first byte goes out (`compress_all`).
    let one_pass = seekable.is_some()
        && (spec.is_none()
            || inputs
                .layers
                .iter()
                .all(|l| fits_one_block(l.identity.size)));
    let compressed = match spec {
        Some(spec) if !one_pass => Some(compress_all(inputs, spec)?),
        _ => None,
    };
    match seekable {
        Some(start) => {
            let mut file = File::from(
                stdout
                    .as_fd()
                    .try_clone_to_owned()
                    .context("cannot duplicate stdout")?,
            );
            drop(stdout);
            let result = match compressed {
                None => write_seekable_from(inputs, spec, &file, start),
                Some(source) => write_tar(inputs, source, &mut file, &mut false),
            };
            if result.is_err() {
                // Nothing we wrote may remain; best effort, the error is
                // reported.
                let _ = file.set_len(start);
                let _ = file.seek(SeekFrom::Start(start));
            }
            result
        }
        None => {
            drop(stdout);
            let source = match compressed {
                None => hash_all(inputs)?,
                Some(source) => source,
            };
            let mut out = filtertool::stdout();
            let mut started = false;
            let result = write_tar(inputs, source, &mut out, &mut started);
            if let Err(e) = &result {
                if started && !filtertool::is_broken_pipe(e) {
                    let _ = out.write_all(&tarfmt::poison_block());
                    let _ = out.flush();
                }
            }
            result
        }
    }
}

/// Where the image may be written in one pass, the offset it starts
/// at: `fd` is a regular file, without `O_APPEND` (the kernel would put
/// every `pwrite` at the end), with nothing after its offset.
fn seekable_start(fd: BorrowedFd<'_>) -> io::Result<Option<u64>> {
    let file = File::from(fd.try_clone_to_owned()?);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    if flags.contains(rustix::fs::OFlags::APPEND)
        || flags & rustix::fs::OFlags::ACCMODE == rustix::fs::OFlags::RDONLY
    {
        return Ok(None);
    }
    let start = (&file).stream_position()?;
    if meta.len() > start {
        // Bytes after the offset belong to someone else: a failure must
        // not cut them off, so write as a stream does.
        return Ok(None);
    }
    Ok(Some(start))
}

/// The single-pass writer, into `file` from offset `start`: each layer
/// is checked and hashed as it is written (compressed with `spec`, where
/// given, every layer then [`fits_one_block`]) after a slot for its
/// header, which is written once the digest is known. The caller cuts the
/// file back to `start` on error.
fn write_seekable_from(
    inputs: &Inputs<'_>,
    spec: Option<&Spec>,
    file: &File,
    start: u64,
) -> Result<Image> {
    let epoch = inputs.opts.epoch;
    let at = |bytes: &[u8], off: u64| {
        file.write_all_at(bytes, off)
            .context("writing the image to stdout")
    };
    let head = Image::head(epoch);
    at(&head, start)?;
    let first = start + head.len() as u64;
    let ((blobs, stored, mut off), arch) = alongside_arch(inputs, || {
        let mut off = first;
        let mut stored = BTreeSet::new();
        let mut blobs = Vec::with_capacity(inputs.layers.len());
        for layer in &inputs.layers {
            // A plain blob's size is the layer's; a compressed one's header
            // is one block ([`fits_one_block`]).
            let slot = match spec {
                None => blob_header(&"0".repeat(64), layer.identity.size, epoch).len(),
                Some(_) => tarfmt::BLOCK,
            } as u64;
            // Until the real header is known its slot holds a block that
            // no tar reader accepts.
            at(&tarfmt::poison_block(), off)?;
            let data = off + slot;
            let blob = match spec {
                None => {
                    let mut sink = |bytes: &[u8], pos: u64| at(bytes, data + pos);
                    LayerBlob::plain(layerpass::read_layer(layer, Some(&mut sink))?)
                }
                Some(spec) => {
                    let out = WriteAt { file, pos: data };
                    compress_layer(layer, spec, out, || "the image to stdout".to_string())?
                }
            };
            if stored.insert(blob.digest.clone()) {
                let header = blob_header(&blob.digest, blob.size, epoch);
                if header.len() as u64 != slot {
                    bail!("layer {}: header size changed", quote_path(&layer.path));
                }
                let pad = &[0u8; tarfmt::BLOCK][..tarfmt::padding(blob.size)];
                at(pad, data + blob.size)?;
                at(&header, off)?;
                off = data + blob.size + pad.len() as u64;
            }
            // A repeated layer leaves `off` where it was: what was
            // written of it is overwritten by what follows, or cut off
            // below.
            blobs.push(blob);
        }
        Ok((blobs, stored, off))
    })?;
    let image = documents(inputs, blobs, arch)?;
    let tail = image.tail(&stored);
    at(&tail, off)?;
    off += tail.len() as u64;
    file.set_len(off).context("writing the image to stdout")?;
    // Leave the offset after the image, where a plain writer's would be.
    (&*file)
        .seek(SeekFrom::Start(off))
        .context("writing the image to stdout")?;
    Ok(image)
}

/// Every layer's blob known before the first byte of a two-pass write,
/// and where each stored blob's bytes come from.
struct Source {
    blobs: Vec<LayerBlob>,
    arch: String,
    /// The blobs' bytes: the layer files themselves (plain), or one
    /// temporary file per stored blob, in order (compressed).
    files: Option<Vec<File>>,
}

/// The first pass of the two-pass writer for plain layers: every layer
/// checked and hashed.
fn hash_all(inputs: &Inputs<'_>) -> Result<Source> {
    let (blobs, arch) = alongside_arch(inputs, || {
        inputs
            .layers
            .iter()
            .map(|l| layerpass::read_layer(l, None).map(LayerBlob::plain))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Source {
        blobs,
        arch,
        files: None,
    })
}

/// The second pass: the image tar, each stored blob copied from its
/// source. `started` is set once a byte may be out.
fn write_tar<W: Write>(
    inputs: &Inputs<'_>,
    source: Source,
    out: &mut W,
    started: &mut bool,
) -> Result<Image> {
    let Source { blobs, arch, files } = source;
    let image = documents(inputs, blobs, arch)?;
    let epoch = image.epoch;
    let w = |e: io::Error| anyhow::Error::new(e).context("writing the image");
    *started = true;
    out.write_all(&Image::head(epoch)).map_err(w)?;
    let mut stored = BTreeSet::new();
    let mut files = files.map(Vec::into_iter);
    for (layer, blob) in inputs.layers.iter().zip(&image.layers) {
        if !stored.insert(blob.digest.clone()) {
            continue;
        }
        out.write_all(&blob_header(&blob.digest, blob.size, epoch))
            .map_err(w)?;
        match files.as_mut() {
            None => copy_layer(layer, blob.size, out)?,
            Some(files) => {
                let Some(mut file) = files.next() else {
                    bail!("a compressed layer's temporary file is missing");
                };
                file.seek(SeekFrom::Start(0))
                    .context("reading back a compressed layer")?;
                // `io::copy` between files (or into a pipe) runs in the kernel.
                let copied = io::copy(&mut (&mut file).take(blob.size), out).map_err(w)?;
                if copied != blob.size {
                    bail!("a compressed layer's temporary file shrank");
                }
            }
        }
        out.write_all(&[0u8; tarfmt::BLOCK][..tarfmt::padding(blob.size)])
            .map_err(w)?;
    }
    out.write_all(&image.tail(&stored)).map_err(w)?;
    out.flush().map_err(w)?;
    Ok(image)
}

/// A `Write` that hashes and counts what goes through it: the blob's
/// digest and size are those of the bytes written, as the layer pass's
/// are of the bytes read.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads `layer` once (checked and hashed as uncompressed layers are,
/// [`layerpass::read_layer`]) and compresses it into `out`, hashing the
/// compressed bytes as they are written. `shown` names `out` in messages. Memory: the pass's chunks, the
/// encoder's window and buffers, one `BufWriter`; never the layer.
fn compress_layer<W: Write + Send>(
    layer: &LayerFile,
    spec: &Spec,
    file: W,
    shown: impl Fn() -> String + Sync,
) -> Result<LayerBlob> {
    let media_type = compressed_media_type(spec).map_err(|e| anyhow!(e))?;
    let out = HashingWriter {
        inner: io::BufWriter::with_capacity(layerpass::CHUNK, file),
        hasher: Sha256::new(),
        count: 0,
    };
    let writing = |e: io::Error| anyhow::Error::new(e).context(format!("writing {}", shown()));
    let mut encoder = Some(Encoder::new(*spec, out).map_err(|e| {
        anyhow::Error::new(e).context(format!("starting the {} compressor", spec.name()))
    })?);
    let h = {
        let mut sink = |bytes: &[u8], _pos: u64| match encoder.as_mut() {
            Some(e) => e.write_all(bytes).map_err(writing),
            None => Ok(()),
        };
        layerpass::read_layer(layer, Some(&mut sink))?
    };
    let Some(encoder) = encoder.take() else {
        bail!("layer {}: the compressor is gone", quote_path(&layer.path));
    };
    let mut out = encoder.finish().map_err(writing)?;
    out.flush().map_err(writing)?;
    let digest: [u8; 32] = out.hasher.finalize().into();
    Ok(LayerBlob {
        diff_id: h.digest,
        digest: filelist::hex::encode(&digest),
        size: out.count,
        media_type,
    })
}

/// Writes at an offset of a file, moving on by what it wrote: the
/// compressor's output placed in the image file after a header slot.
struct WriteAt<'a> {
    file: &'a File,
    pos: u64,
}

impl Write for WriteAt<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.pos)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether the blob of a layer of `size` bytes surely has a one-block
/// header, so that the slot can be reserved before compressing. Neither
/// method grows its input by more than 1/64 plus 1 MiB: zstd's
/// `ZSTD_compressBound` is `n + n/256` plus a few KiB, deflate's stored
/// blocks add 5 bytes per 64 KiB (RFC 1951 3.2.4) and our gzip's sync
/// flushes 5 bytes per block, plus the gzip header and trailer.
fn fits_one_block(size: u64) -> bool {
    let bound = size.saturating_add(size / 64).saturating_add(1 << 20);
    blob_header(&"0".repeat(64), bound, 0).len() == tarfmt::BLOCK
}

/// Compresses every layer, each into an unnamed temporary file in
/// `$TMPDIR` (`O_TMPFILE`, tempfile(3)): it has no name to leave behind,
/// whether we fail, are killed or finish, and the kernel frees it when
/// the last descriptor closes. A tar member's header holds its size, and
/// a compressed blob's size is known only once it is compressed; this
/// spends one write and one in-kernel copy (`copy_file_range`) of the
/// compressed bytes, where compressing twice (once to measure, once to
/// write) would double the costliest step. `$TMPDIR` needs room for the
/// compressed layers, memory stays bounded.
///
/// Returns every layer's blob, and the files of the blobs to store: a
/// layer repeating an earlier one is stored once.
fn compress_all(inputs: &Inputs<'_>, spec: &Spec) -> Result<Source> {
    let tmp = std::env::temp_dir();
    let shown = || format!("a temporary file in {}", quote_path(&tmp));
    let ((blobs, files), arch) = alongside_arch(inputs, || {
        let mut blobs = Vec::with_capacity(inputs.layers.len());
        let mut files = Vec::new();
        let mut stored = BTreeSet::new();
        for layer in &inputs.layers {
            let file = tempfile::tempfile_in(&tmp)
                .map_err(|e| anyhow::Error::new(e).context(format!("cannot create {}", shown())))?;
            let blob = compress_layer(layer, spec, &file, shown)?;
            if stored.insert(blob.digest.clone()) {
                files.push(file);
            }
            blobs.push(blob);
        }
        Ok((blobs, files))
    })?;
    Ok(Source {
        blobs,
        arch,
        files: Some(files),
    })
}

/// Copies a layer into `out` after checking it is the file that was
/// hashed. `io::copy` from a `File` to a file, a pipe or a `BufWriter`
/// over either runs in the kernel (`copy_file_range`, `splice`,
/// `sendfile`): no pass through user space.
fn copy_layer<W: Write>(layer: &LayerFile, size: u64, out: &mut W) -> Result<()> {
    layer.check_unchanged()?;
    let mut file = &layer.file;
    file.seek(SeekFrom::Start(0))
        .with_context(|| format!("reading layer {}", quote_path(&layer.path)))?;
    let copied = io::copy(&mut file.take(size), out).context("writing the image")?;
    if copied != size {
        bail!(
            "layer {} shrank while being copied",
            quote_path(&layer.path)
        );
    }
    layer.check_unchanged()
}

/// Writes the layout into a new directory `dest`: built in a sibling
/// temporary directory and renamed into place at the end, so a failure
/// leaves nothing that looks like an image. Each layer is read once,
/// into a blob file that is renamed to its digest.
pub fn write_dir(inputs: &Inputs<'_>, dest: &Path) -> Result<Image> {
    let shown = quote_path(dest);
    check_oci_dir(dest)?;
    let parent = parent_of(dest);
    let base = dest
        .file_name()
        .ok_or_else(|| anyhow!("--oci-dir {shown}: not a directory name"))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.tmp-", base.to_string_lossy()))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a directory in {}", quote_path(parent)))?;
    let blobs = tmp.path().join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", quote_path(&blobs)))?;
    // The whole directory is private until the rename, so one fixed name
    // for the blob being written is enough.
    let partial = blobs.join(".partial");
    let ((hashed, mut stored), arch) = alongside_arch(inputs, || {
        let mut stored = BTreeSet::new();
        let mut hashed = Vec::with_capacity(inputs.layers.len());
        for layer in &inputs.layers {
            let f = File::create(&partial)
                .with_context(|| format!("cannot create {}", quote_path(&partial)))?;
            let blob = match &inputs.opts.compress {
                // Compressed straight into the blob file: the name comes
                // after the bytes here, so no temporary is needed.
                Some(spec) => compress_layer(layer, spec, &f, || quote_path(&partial))?,
                None => {
                    let mut sink = |bytes: &[u8], pos: u64| {
                        f.write_all_at(bytes, pos)
                            .with_context(|| format!("writing {}", quote_path(&partial)))
                    };
                    LayerBlob::plain(layerpass::read_layer(layer, Some(&mut sink))?)
                }
            };
            drop(f);
            if stored.insert(blob.digest.clone()) {
                let path = blobs.join(&blob.digest);
                fs::rename(&partial, &path)
                    .with_context(|| format!("cannot rename into {}", quote_path(&path)))?;
            } else {
                fs::remove_file(&partial)
                    .with_context(|| format!("cannot remove {}", quote_path(&partial)))?;
            }
            hashed.push(blob);
        }
        Ok((hashed, stored))
    })?;
    let image = documents(inputs, hashed, arch)?;
    for (digest, bytes) in [
        (&image.config_digest, &image.config),
        (&image.manifest_digest, &image.manifest),
    ] {
        if stored.insert(digest.clone()) {
            let path = blobs.join(digest);
            fs::write(&path, bytes).with_context(|| format!("writing {}", quote_path(&path)))?;
        }
    }
    for (name, bytes) in [
        ("oci-layout", OCI_LAYOUT),
        ("manifest.json", &image.docker_manifest[..]),
        ("index.json", &image.index[..]),
    ] {
        let path = tmp.path().join(name);
        fs::write(&path, bytes).with_context(|| format!("writing {}", quote_path(&path)))?;
    }
    // An empty directory is replaced. rename(2) never follows a symlink
    // at `dest`: one put there since the check makes it fail (ENOTDIR),
    // as does a non-empty directory (ENOTEMPTY); nothing is written
    // through it.
    let _ = fs::remove_dir(dest);
    fs::rename(tmp.path(), dest).with_context(|| format!("cannot rename into {shown}"))?;
    let _ = tmp.keep();
    Ok(image)
}

/// The directory a named output goes in: where its temporary goes too,
/// so that the final rename(2) stays within one filesystem.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `--oci-dir` must be absent or an empty directory; a symlink there,
/// dangling or not, is refused rather than followed.
pub fn check_oci_dir(dest: &Path) -> Result<()> {
    let shown = quote_path(dest);
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("--oci-dir {shown}"))),
        Ok(m) if m.file_type().is_symlink() => {
            bail!("--oci-dir {shown}: is a symbolic link; refusing to write through it")
        }
        Ok(m) if !m.is_dir() => bail!("--oci-dir {shown}: exists and is not a directory"),
        Ok(_) => {
            let mut entries = fs::read_dir(dest).with_context(|| format!("--oci-dir {shown}"))?;
            if entries.next().is_some() {
                bail!("--oci-dir {shown}: directory exists and is not empty");
            }
            Ok(())
        }
    }
}

/// Writes `bytes` to `path` as a new file: into a temporary file in the
/// same directory, then rename(2) over `path`. A symlink at `path`
/// (dangling too) is replaced, never written through, and a reader sees
/// the old contents or the new, never half; on error the temporary is
/// removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let shown = quote_path(path);
    let base = path
        .file_name()
        .ok_or_else(|| anyhow!("{shown}: not a file name"))?;
    let parent = parent_of(path);
    // 0666 less the umask, as a plain create would give.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.tmp-", base.to_string_lossy()))
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(parent)
        // tempfile's error repeats the random name; the kind is enough.
        .map_err(|e| match e.raw_os_error() {
            Some(n) => io::Error::from_raw_os_error(n),
            None => e,
        })
        .with_context(|| format!("cannot create a file in {}", quote_path(parent)))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .with_context(|| format!("writing {}", quote_path(tmp.path())))?;
    tmp.persist(path)
        .map_err(|e| anyhow::Error::new(e.error).context(format!("cannot rename into {shown}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn blob_header_is_one_block_below_8_gib() {
        let d = "a".repeat(64);
        assert_eq!(blob_header(&d, 0, 0).len(), tarfmt::BLOCK);
        assert_eq!(blob_header(&d, (8 << 30) - 1, 0).len(), tarfmt::BLOCK);
        let big = blob_header(&d, 8 << 30, 0).len();
        assert!(
            big > tarfmt::BLOCK && big.is_multiple_of(tarfmt::BLOCK),
            "{big}"
        );
    }
}
