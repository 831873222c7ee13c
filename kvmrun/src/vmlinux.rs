//! The uncompressed kernel inside a bzImage, extracted once and cached.
//!
//! Under software emulation (TCG) a bzImage spends seconds in its own
//! real-mode setup and decompressor; the same kernel's vmlinux ELF, loaded by
//! qemu through the PVH entry point (the x86/HVM direct boot ABI, found by
//! the Xen ELF note `XEN_ELFNOTE_PHYS32_ENTRY`), skips both. Measured on the
//! Debian 6.1 kernel under TCG: hello in 4.0 s as vmlinux against 6-10 s as
//! a bzImage.
//!
//! The payload is located from the boot protocol header
//! (Documentation/arch/x86/boot.rst: `payload_offset` at 0x248 and
//! `payload_length` at 0x24c, protocol 2.08 and later, counted from the
//! protected-mode code after the `setup_sects` sectors), and its format from
//! its first bytes, the magic numbers `scripts/extract-vmlinux` looks for.
//! The decompressors are the reference libraries where the crate wraps one
//! (liblzma through `xz2` for xz and lzma, libbzip2 through `bzip2`, zlib's
//! format through `flate2`), a well-kept pure Rust one where a C build
//! would cost more than it saves (`ruzstd`), and the workspace's one
//! reader of the lz4 legacy frame (`compress::lz4legacy`, on `lz4_flex`).
//!
//! The cache follows the XDG base directory spec: `$XDG_CACHE_HOME/kvmrun/`
//! (only an absolute `$XDG_CACHE_HOME` counts), else `~/.cache/kvmrun/`,
//! created 0700. An entry is named `<bzImage SHA-256>-<vmlinux SHA-256>`: the
//! first part finds it, the second verifies it on every use, so a damaged
//! entry (a crash mid-write cannot leave one: entries are written to a
//! temporary file and renamed into place) is detected, removed and rebuilt.
//! An entry's modification time is set to now whenever it is used, and
//! an entry unused for [`MAX_AGE_DAYS`] days is removed by the next
//! kvmrun that reads the directory (a kernel upgrade would otherwise
//! leave about 65 MB per Debian kernel behind for ever); a removed entry
//! costs one extraction (a second or two) if that kernel comes back, so
//! the rule needs no size limit and no lock: an entry removed while
//! another kvmrun boots it stays readable through that one's descriptor.
//! Every file is opened relative to the cache directory's descriptor with
//! `O_NOFOLLOW`, and the directory must be ours and not writable by others,
//! so no other user can substitute a kernel.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};

/// The largest vmlinux we write: an x86-64 kernel is far smaller (Debian's
/// is about 60 MiB), so anything larger is a broken or hostile payload.
pub const MAX_VMLINUX: u64 = 256 << 20;

/// Entries not used for this many days are removed (see the module doc).
pub const MAX_AGE_DAYS: i64 = 30;

/// The largest bzImage read (the payload is compressed, so it is smaller
/// than [`MAX_VMLINUX`]).
pub const MAX_BZIMAGE: u64 = MAX_VMLINUX;

/// The compression of a bzImage's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Xz,
    Lzma,
    Bzip2,
    Lz4,
    Zstd,
}

impl Format {
    /// The magic numbers of `scripts/extract-vmlinux`, except lzma's: it
    /// looks for `5d 00 00 00` (properties, then a 64 MiB dictionary as
    /// `lzma -9` writes it), the kernel's own lib/decompress.c only for
    /// `5d 00`, which any dictionary size of 256 bytes or more starts with.
    pub fn detect(payload: &[u8]) -> Option<Format> {
        const MAGICS: &[(&[u8], Format)] = &[
            (b"\x1f\x8b\x08", Format::Gzip),
            (b"\xfd7zXZ\x00", Format::Xz),
            (b"BZh", Format::Bzip2),
            (b"\x5d\x00", Format::Lzma),
            (b"\x02\x21\x4c\x18", Format::Lz4),
            (b"\x28\xb5\x2f\xfd", Format::Zstd),
        ];
        MAGICS
            .iter()
            .find(|(m, _)| payload.starts_with(m))
            .map(|&(_, f)| f)
    }
}

/// Where a bzImage's payload is, from its boot protocol header; `None` when
/// `image` is not a bzImage of protocol 2.08 or later.
pub fn payload(image: &[u8]) -> Option<&[u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(image.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(image.get(o..o + 4)?.try_into().ok()?));
    if image.get(0x202..0x206)? != b"HdrS" || u16_at(0x206)? < 0x208 {
        return None;
    }
    // boot.rst: "If this field is 0, the real value is 4."
    let sects = match *image.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (sects + 1) * 512 + usize::try_from(u32_at(0x248)?).ok()?;
    let len = usize::try_from(u32_at(0x24c)?).ok()?;
    image.get(start..start.checked_add(len)?)
}

/// A writer that refuses to grow past [`MAX_VMLINUX`] and hashes what
/// passes.
struct Bounded<W> {
    inner: W,
    written: u64,
    hash: Sha256,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > MAX_VMLINUX {
            return Err(io::Error::other(format!(
                "it decompresses to more than {} MiB",
                MAX_VMLINUX >> 20
            )));
        }
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decompresses `data` (in `format`) into `out`; returns the bytes written.
/// The kernel build appends the uncompressed size as 4 bytes after every
/// format's stream (`size_append` in scripts/Makefile.lib); each decoder
/// stops at its stream's end, so they are not read as data.
fn decompress(format: Format, data: &[u8], out: &mut dyn Write) -> io::Result<u64> {
    let mut r: Box<dyn Read + '_> = match format {
        Format::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
        Format::Xz => {
            let stream = xz2::stream::Stream::new_stream_decoder(MAX_VMLINUX, 0)
                .map_err(|e| io::Error::other(e.to_string()))?;
            return liblzma(stream, data, out);
        }
        Format::Lzma => {
            let stream = xz2::stream::Stream::new_lzma_decoder(MAX_VMLINUX)
                .map_err(|e| io::Error::other(e.to_string()))?;
            return liblzma(stream, data, out);
        }
        Format::Bzip2 => Box::new(bzip2::read::BzDecoder::new(data)),
        Format::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
        // The legacy frame (`lz4 -l`) has no end marker: the appended
        // size would be read as one more block's, so it is left out.
        Format::Lz4 => Box::new(compress::lz4legacy::Decoder::new(
            &data[..data.len().saturating_sub(4)],
        )?),
    };
    io::copy(&mut r, out)
}

/// Runs a liblzma decoder over `data` up to its stream's end. Driven by
/// hand because `xz2`'s readers call the decoder again after the end, which
/// fails on the size bytes the kernel build appends.
fn liblzma(mut stream: xz2::stream::Stream, data: &[u8], out: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut input = data;
    let mut total = 0u64;
    loop {
        let (in0, out0) = (stream.total_in(), stream.total_out());
        let status = stream
            .process(input, &mut buf, xz2::stream::Action::Run)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let used = (stream.total_in() - in0) as usize;
        let made = (stream.total_out() - out0) as usize;
        input = &input[used..];
        out.write_all(&buf[..made])?;
        total += made as u64;
        if status == xz2::stream::Status::StreamEnd {
            return Ok(total);
        }
        if used == 0 && made == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the compressed stream is cut short",
            ));
        }
    }
}

/// Whether a vmlinux ELF (64-bit little-endian, read through `f`) carries
/// the PVH entry note: an `ELF_NOTE` named "Xen" of type 18,
/// `XEN_ELFNOTE_PHYS32_ENTRY` (include/xen/interface/elfnote.h), which is
/// what qemu's `-kernel` looks for to boot an ELF through PVH.
pub fn has_pvh_note(f: &File) -> io::Result<bool> {
    const PT_NOTE: u32 = 4;
    const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
    let mut eh = [0u8; 64];
    f.read_exact_at(&mut eh, 0)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Ok(false);
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at =
        |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
    let u64_at =
        |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let phoff = u64_at(&eh, 0x20);
    let phentsize = u64::from(u16_at(&eh, 0x36));
    let phnum = u64::from(u16_at(&eh, 0x38));
    if phentsize < 56 {
        return Ok(false);
    }
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        f.read_exact_at(&mut ph, phoff.saturating_add(i * phentsize))?;
        if u32_at(&ph, 0) != PT_NOTE {
            continue;
        }
        let (off, size) = (u64_at(&ph, 0x08), u64_at(&ph, 0x20));
        // Note segments are a few hundred bytes; a larger one is not read.
        if size > 1 << 16 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        f.read_exact_at(&mut notes, off)?;
        let mut p = 0usize;
        let align = |n: usize| n.div_ceil(4) * 4;
        while p + 12 <= notes.len() {
            let namesz = u32_at(&notes, p) as usize;
            let descsz = u32_at(&notes, p + 4) as usize;
            let kind = u32_at(&notes, p + 8);
            let name = notes.get(p + 12..p + 12 + namesz);
            if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == Some(b"Xen\0") {
                return Ok(true);
            }
            p = p + 12 + align(namesz) + align(descsz);
        }
    }
    Ok(false)
}

/// The cache directory: `$XDG_CACHE_HOME/kvmrun`, else `$HOME/.cache/kvmrun`.
pub fn cache_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
    // The XDG base directory spec: a relative path is invalid and ignored.
    let base = match xdg.filter(|p| p.is_absolute()) {
        Some(p) => p,
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("kvmrun"))
}

/// A cached vmlinux, ready to boot.
#[derive(Debug)]
pub struct Entry {
    /// The vmlinux, open for reading (qemu reads `/proc/self/fd/N`).
    pub file: File,
    /// Its path in the cache, for messages.
    pub path: PathBuf,
    /// Whether its ELF has the PVH entry note.
    pub pvh: bool,
    /// Whether this call extracted it (false: it was in the cache).
    pub extracted: bool,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_why(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Opens (creating it 0700 where missing) the directory `dir`, each
/// component without following a symlink in the last one, and checks that
/// it is ours and writable by no one else.
fn open_dir(dir: &Path) -> anyhow::Result<OwnedFd> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    let open = |p: &Path| rustix::fs::open(p, flags, Mode::empty());
    let fd = match open(dir) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            // The XDG spec: create missing directories 0700; here the cache
            // base ($XDG_CACHE_HOME or ~/.cache) and kvmrun/ in it, not
            // $HOME itself (an account whose home is /nonexistent gets a
            // note, not a new top-level directory). EEXIST: a racing
            // kvmrun made it.
            let mut b = std::fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            for d in [dir.parent(), Some(dir)].into_iter().flatten() {
                match b.create(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => bail!(
                        "creating {}: {}",
                        filtertool::quote::quote_path(d),
                        io_why(&e)
                    ),
                }
            }
            open(dir).map_err(|e| anyhow::anyhow!("{}", io_why(&e.into())))?
        }
        Err(e) => bail!("{}", io_why(&e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| anyhow::anyhow!("{}", io_why(&e.into())))?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        bail!("owned by uid {}, not by us (uid {me})", st.st_uid);
    }
    if st.st_mode & 0o022 != 0 {
        bail!(
            "writable by others (mode {:04o}): chmod 0700 it",
            st.st_mode & 0o7777
        );
    }
    Ok(fd)
}

/// Reads all of `f` (a regular file of at most `max` bytes) and its digest.
fn read_bounded(f: &File, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut r = f.take(max + 1);
    r.read_to_end(&mut data)
        .map_err(|e| anyhow::anyhow!("reading the {what}: {}", io_why(&e)))?;
    if data.len() as u64 > max {
        bail!("the {what} is larger than {} MiB", max >> 20);
    }
    Ok(data)
}

/// The SHA-256 of everything `f` holds, read from its start, if it is a
/// regular file of at most [`MAX_VMLINUX`] bytes.
fn digest_file(f: &File) -> io::Result<Option<String>> {
    let m = f.metadata()?;
    if !m.is_file() || m.len() > MAX_VMLINUX {
        return Ok(None);
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
        if off > MAX_VMLINUX {
            return Ok(None);
        }
    }
    Ok(Some(hex(&h.finalize())))
}

/// The vmlinux of the bzImage open as `kernel`, from the cache in `dir`
/// (extracted into it first if it is not there, or damaged). `Ok(None)`:
/// `kernel` is not a bzImage (an ELF is booted as it is).
pub fn cached(kernel: &File, dir: &Path) -> anyhow::Result<Option<Entry>> {
    // The header first: a vmlinux given as it is (tens of MB) is not read.
    let mut head = [0u8; 0x250];
    let n = kernel.read_at(&mut head, 0).unwrap_or(0);
    if &head[0x202.min(n)..0x206.min(n)] != b"HdrS" {
        return Ok(None);
    }
    let image = read_bounded(kernel, MAX_BZIMAGE, "kernel")?;
    let Some(data) = payload(&image) else {
        return Ok(None);
    };
    let Some(format) = Format::detect(data) else {
        bail!(
            "the bzImage's payload is in no format we unpack (its first bytes: {})",
            hex(&data[..data.len().min(6)])
        );
    };
    let key = hex(&Sha256::digest(&image));
    let quoted = filtertool::quote::quote_path(dir);
    let dfd = open_dir(dir).with_context(|| format!("kernel cache {quoted}"))?;

    if let Some(e) = lookup(&dfd, dir, &key)? {
        return Ok(Some(e));
    }

    // Extract into a temporary file of our own in the cache directory
    // (O_EXCL, so never through a symlink), then rename it into place:
    // concurrent kvmruns each write their own and the last rename wins,
    // with the same content.
    let tmp_name = format!(".tmp-{key}-{}-{}", std::process::id(), nonce());
    let tfd = rustix::fs::openat(
        &dfd,
        tmp_name.as_str(),
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "kernel cache {quoted}: creating a file: {}",
            io_why(&e.into())
        )
    })?;
    let file = File::from(tfd);
    let unlink_tmp = |dfd: &OwnedFd| {
        let _ = rustix::fs::unlinkat(dfd, tmp_name.as_str(), AtFlags::empty());
    };
    let (res, hash) = {
        let mut w = Bounded {
            inner: io::BufWriter::with_capacity(1 << 20, &file),
            written: 0,
            hash: Sha256::new(),
        };
        let res = decompress(format, data, &mut w).and_then(|_| w.flush());
        (res, w.hash.clone())
    };
    if let Err(e) = res {
        unlink_tmp(&dfd);
        bail!("unpacking the bzImage's {format:?} payload: {}", io_why(&e));
    }
    let mut magic = [0u8; 4];
    if file.read_exact_at(&mut magic, 0).is_err() || &magic != b"\x7fELF" {
        unlink_tmp(&dfd);
        bail!("the bzImage's {format:?} payload is not an ELF vmlinux");
    }
    let name = format!("{key}-{}", hex(&hash.finalize()));
    let renamed = file.sync_all().and_then(|()| {
        rustix::fs::renameat(&dfd, tmp_name.as_str(), &dfd, name.as_str()).map_err(Into::into)
    });
    if let Err(e) = renamed {
        unlink_tmp(&dfd);
        bail!("kernel cache {quoted}: writing {name}: {}", io_why(&e));
    }
    let pvh = has_pvh_note(&file).unwrap_or(false);
    Ok(Some(Entry {
        file,
        path: dir.join(name),
        pvh,
        extracted: true,
    }))
}

/// Finds `key`'s entry in the cache and verifies it; a damaged one (its
/// content does not match the digest in its name) is removed.
fn lookup(dfd: &OwnedFd, dir: &Path, key: &str) -> anyhow::Result<Option<Entry>> {
    let prefix = format!("{key}-");
    let mut names = Vec::new();
    let dup = rustix::io::dup(dfd).map_err(|e| anyhow::anyhow!("{}", io_why(&e.into())))?;
    let rd = rustix::fs::Dir::read_from(dup.as_fd())
        .map_err(|e| anyhow::anyhow!("reading the kernel cache: {}", io_why(&e.into())))?;
    for ent in rd {
        let ent =
            ent.map_err(|e| anyhow::anyhow!("reading the kernel cache: {}", io_why(&e.into())))?;
        let n = ent.file_name().to_bytes();
        if n.starts_with(b".tmp-") {
            // A killed filler's: an extraction takes seconds.
            remove_if_older(dfd, n, 3600);
            continue;
        }
        if n.starts_with(prefix.as_bytes()) && n.len() == prefix.len() + 64 {
            if let Ok(s) = std::str::from_utf8(n) {
                names.push(s.to_string());
            }
        } else if is_entry_name(n) {
            remove_if_older(dfd, n, MAX_AGE_DAYS * 86400);
        }
    }
    names.sort();
    for name in names {
        let want = &name[prefix.len()..];
        let fd = match rustix::fs::openat(
            dfd,
            name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(_) => continue, // a symlink or gone: not an entry of ours
        };
        let file = File::from(fd);
        match digest_file(&file) {
            Ok(Some(d)) if d == want => {
                // Used now: kept another MAX_AGE_DAYS. A cache we cannot
                // stamp still serves.
                let now = rustix::fs::Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_NOW,
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_NOW,
                    },
                };
                let _ = rustix::fs::futimens(&file, &now);
                let pvh = has_pvh_note(&file).unwrap_or(false);
                return Ok(Some(Entry {
                    file,
                    path: dir.join(&name),
                    pvh,
                    extracted: false,
                }));
            }
            _ => {
                // Damaged (or not a regular file): remove it, so it is
                // rebuilt below.
                let _ = rustix::fs::unlinkat(dfd, name.as_str(), AtFlags::empty());
            }
        }
    }
    Ok(None)
}

/// What to boot for the kernel at `path`, open as `file`: its cached
/// vmlinux when it is a bzImage whose vmlinux has the PVH note, else the
/// kernel itself. The cache is a speed-up, never a reason to fail: any
/// error is a one-line note and the bzImage boots as before.
pub fn prefer_vmlinux(path: PathBuf, file: File) -> (PathBuf, File) {
    let Some(dir) = cache_dir() else {
        return (path, file);
    };
    match cached(&file, &dir) {
        Ok(Some(e)) if e.pvh => (e.path, e.file),
        Ok(_) => (path, file),
        Err(e) => {
            eprintln!(
                "{}: note: kernel {}: not using its vmlinux: {}; booting it as it is",
                crate::TOOL,
                filtertool::quote::quote_path(&path),
                filtertool::one_line(&e)
            );
            (path, file)
        }
    }
}

/// Whether `name` is an entry's: two SHA-256s in lowercase hex, joined
/// by `-`.
fn is_entry_name(name: &[u8]) -> bool {
    let hex = |p: &[u8]| p.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    name.len() == 129 && name[64] == b'-' && hex(&name[..64]) && hex(&name[65..])
}

/// Removes `name` (a temporary file a killed kvmrun left, or an entry)
/// when it was last written more than `secs` seconds ago.
fn remove_if_older(dfd: &OwnedFd, name: &[u8], secs: i64) {
    let Ok(st) = rustix::fs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if now.saturating_sub(st.st_mtime) > secs {
        let _ = rustix::fs::unlinkat(dfd, name, AtFlags::empty());
    }
}

/// A number that differs between calls in one process and across processes
/// started at the same instant (with the pid in the name, enough for O_EXCL
/// to rarely retry; it never has to).
fn nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ N
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_magic() {
        assert_eq!(Format::detect(b"\xfd7zXZ\x00\x00"), Some(Format::Xz));
        assert_eq!(Format::detect(b"\x1f\x8b\x08\x00"), Some(Format::Gzip));
        assert_eq!(Format::detect(b"\x28\xb5\x2f\xfd"), Some(Format::Zstd));
        assert_eq!(Format::detect(b"\x89LZO"), None);
    }

    #[test]
    fn payload_from_the_header() {
        let mut img = vec![0u8; 4096];
        img[0x1f1] = 2;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&10u32.to_le_bytes());
        img[3 * 512 + 100] = 0xab;
        assert_eq!(payload(&img).unwrap()[0], 0xab);
        assert_eq!(payload(&img).unwrap().len(), 10);
        img[0x24c..0x250].copy_from_slice(&10000u32.to_le_bytes());
        assert!(payload(&img).is_none(), "past the end");
        assert!(payload(b"\x7fELF").is_none());
    }
}
