//! The initrd qemu boots: the image's initrd as given, then our guest init
//! as a second newc archive, so an image needs no init or shell of its own
//! (docs/DESIGN.md, "Running in a VM").
//!
//! The kernel unpacks concatenated archives in order, each possibly
//! compressed, skipping NUL padding between them, and a later member of the
//! same name replaces an earlier one (kernel
//! `Documentation/driver-api/early-userspace/buffer-format.rst`). Ours only
//! adds `/.kvmrun/`, a name no image uses, and qemu boots with
//! `rdinit=/.kvmrun/init`, so the image's own `/init` stays what the program
//! runs. qemu takes a single `-initrd` file, so the two are concatenated
//! into a temporary file, in chunks between which signals and the
//! `--timeout` clock are checked.
//!
//! The appended archive carries:
//! - `.kvmrun/init`: the static guest init built from `guest/init.rs`;
//! - `.kvmrun/argv`: the command, each argument NUL-terminated (no quoting
//!   and no kernel command-line length limit), empty for `/init`;
//! - `.kvmrun/verbose`: present with `-v`, so the init leaves the kernel's
//!   console messages on at power-off.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Context;
use filtertool::quote::{quote, quote_path};
use mkinitrd::newc::{Header, Writer};

use crate::vm::Watch;

/// The guest init, built by `build.rs`.
pub static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kvmrun-init"));

/// Where the init lands in the guest: the `rdinit=` value.
pub const INIT_PATH: &str = "/.kvmrun/init";

/// What the guest init is told.
#[derive(Clone, Copy, Debug)]
pub struct Guest<'a> {
    /// The command; empty for the image's `/init`.
    pub argv: &'a [OsString],
    pub verbose: bool,
}

/// The first bytes of what the kernel unpacks as an initramfs: a newc
/// archive, or a compressed stream of one, as init/initramfs.c and
/// lib/decompress.c (`compressed_formats`) recognise them.
const MAGICS: &[(&[u8], &str)] = &[
    (b"070701", "newc cpio"),
    (b"070702", "newc cpio with CRC"),
    (&[0x1f, 0x8b], "gzip"),
    (&[0x1f, 0x9e], "gzip (old)"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz"),
    (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
    (&[0x5d, 0x00, 0x00], "lzma"),
    (b"BZh", "bzip2"),
    (&[0x89, 0x4c, 0x5a, 0x4f], "lzo"),
];

/// The longest magic above.
const MAGIC_LEN: usize = 6;

/// What the initrd starts with, if the kernel would take it. `head` is
/// the first bytes after any leading NULs (the kernel skips NUL padding
/// before an archive, init/initramfs.c `unpack_to_rootfs`).
pub fn format_of(head: &[u8]) -> Option<&'static str> {
    MAGICS
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|(_, name)| *name)
}

/// What an initrd may be read from, and how much of it.
pub struct Source<'a> {
    /// A path, or `-` for stdin.
    pub path: &'a Path,
    /// The most bytes the initrd may have: qemu loads it whole into the
    /// guest's RAM, so one larger than the VM's memory cannot boot.
    pub limit: u64,
    /// Why `limit` is what it is, for the message.
    pub limit_why: &'a str,
}

/// Writes the initrd followed by our archive to `out`. The input is
/// opened `O_NONBLOCK` (a FIFO without a writer cannot hang the open) and
/// must be a regular file, or for `-` a pipe or a regular file; it is
/// copied in chunks with `watch` checked between them, and for a pipe
/// polled together with the signals and the deadline, so SIGTERM or
/// `--timeout` ends a copy from a writer that never writes. Its first
/// bytes must be an initramfs's, and it may not exceed `src.limit`.
pub fn build(src: &Source, out: &Path, guest: &Guest, watch: &Watch) -> anyhow::Result<()> {
    let shown = quote_path(src.path);
    let code = filtertool::exit::RUNNER_FAILED;
    let stdin = src.path.as_os_str() == "-";
    let stdin_handle = io::stdin();
    let opened;
    let input: BorrowedFd = if stdin {
        stdin_handle.as_fd()
    } else {
        opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(src.path)
            .with_context(|| format!("initrd {shown}"))?;
        opened.as_fd()
    };
    let meta = File::from(
        input
            .try_clone_to_owned()
            .with_context(|| format!("initrd {shown}"))?,
    )
    .metadata()
    .with_context(|| format!("initrd {shown}"))?;
    let kind = meta.file_type();
    let pipe = kind.is_fifo();
    if !(kind.is_file() || (stdin && pipe)) {
        let what = if stdin {
            "stdin is not a pipe or a regular file"
        } else {
            "not a regular file"
        };
        return Err(filtertool::fail(
            code,
            format!(
                "initrd {shown}: {what} (it is {})",
                filtertool::file_type_name(&meta)
            ),
        ));
    }
    if kind.is_file() && meta.len() > src.limit {
        return Err(too_big(&shown, src));
    }

    let mut reader = File::from(
        input
            .try_clone_to_owned()
            .with_context(|| format!("initrd {shown}"))?,
    );
    let mut f = File::create(out).with_context(|| format!("creating {}", quote_path(out)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    // The first bytes after leading NULs, until the magic is checked.
    let mut head: Vec<u8> = Vec::with_capacity(MAGIC_LEN);
    let mut checked = false;
    loop {
        if pipe {
            watch.wait_readable(input.as_fd())?;
        } else {
            watch.check()?;
        }
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading initrd {shown}"))),
        };
        if n == 0 {
            break;
        }
        let data = &buf[..n];
        total = total.saturating_add(n as u64);
        if total > src.limit {
            return Err(too_big(&shown, src));
        }
        if !checked {
            let skip = if head.is_empty() {
                data.iter().take_while(|&&b| b == 0).count()
            } else {
                0
            };
            let take = (MAGIC_LEN - head.len()).min(n - skip);
            head.extend_from_slice(&data[skip..skip + take]);
            if head.len() == MAGIC_LEN {
                check_magic(&shown, &head)?;
                checked = true;
            }
        }
        f.write_all(data)
            .with_context(|| format!("writing {}", quote_path(out)))?;
    }
    if !checked {
        check_magic(&shown, &head)?;
    }
    let f = OpenOptions::new()
        .append(true)
        .open(out)
        .with_context(|| format!("opening {}", quote_path(out)))?;
    drop(buf);
    let len = f.metadata()?.len();
    let mut w = BufWriter::new(f);
    // The kernel looks for the next archive's magic at a multiple of 4
    // bytes from the start of the file (init/initramfs.c, `this_header`),
    // and skips NUL bytes before it. Four more NULs end an lz4 initrd: the
    // legacy frame has no end marker, so lib/decompress_unlz4.c reads the
    // next 4 bytes as a block size and fails ("Decoding failed") on our
    // `0707`, but stops at a block size of 0 (its "empty or end-of-file"
    // case), which every other decompressor leaves to the NUL skipping.
    let pad = len.next_multiple_of(4) - len + 4;
    w.write_all(&[0u8; 8][..pad as usize])?;
    let w = append_guest(w, guest).with_context(|| format!("writing {}", quote_path(out)))?;
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_data().or(Ok(())))
        .with_context(|| format!("writing {}", quote_path(out)))?;
    Ok(())
}

fn too_big(shown: &str, src: &Source) -> anyhow::Error {
    filtertool::fail(
        filtertool::exit::RUNNER_FAILED,
        format!(
            "initrd {shown}: larger than {} MiB, {}, which qemu loads it into",
            src.limit >> 20,
            src.limit_why
        ),
    )
}

/// Refuses what the kernel would not unpack, naming what was found.
fn check_magic(shown: &str, head: &[u8]) -> anyhow::Result<()> {
    if format_of(head).is_some() {
        return Ok(());
    }
    let found = if head.is_empty() {
        "it is empty (or only NUL bytes)".to_string()
    } else {
        format!("it starts with {}", quote(head))
    };
    Err(filtertool::fail(
        filtertool::exit::RUNNER_FAILED,
        format!(
            "initrd {shown}: not an initramfs: {found}, where the kernel takes a newc cpio archive (070701) or gzip, zstd, xz, lz4, lzma, bzip2 or lzo data"
        ),
    ))
}

/// Writes our archive (init, argv, flags) to `out` and returns it.
pub fn append_guest<W: Write>(out: W, guest: &Guest) -> io::Result<W> {
    let mut argv = Vec::new();
    for a in guest.argv {
        argv.extend_from_slice(a.as_bytes());
        argv.push(0);
    }
    let file_size = |n: usize| {
        u32::try_from(n)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "command too long"))
    };
    let mut w = Writer::new(out);
    let entry = |ino: u32, name: &str, mode: u32, filesize: u32| Header {
        name: name.as_bytes().to_vec(),
        ino,
        mode,
        nlink: if mode & 0o170000 == 0o040000 { 2 } else { 1 },
        filesize,
        ..Header::default()
    };
    w.append(&entry(1, ".kvmrun", 0o040755, 0), &mut io::empty())?;
    w.append(
        &entry(2, ".kvmrun/init", 0o100755, file_size(INIT.len())?),
        &mut &INIT[..],
    )?;
    w.append(
        &entry(3, ".kvmrun/argv", 0o100644, file_size(argv.len())?),
        &mut &argv[..],
    )?;
    if guest.verbose {
        w.append(&entry(4, ".kvmrun/verbose", 0o100644, 0), &mut io::empty())?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn init_is_a_static_executable() {
        assert_eq!(&INIT[..4], b"\x7fELF");
        // No PT_INTERP program header (type 3): it runs in an image
        // without a dynamic loader. ELF64 little-endian header offsets.
        assert_eq!(INIT[4], 2, "ELF64");
        let u16_at = |o: usize| u16::from_le_bytes([INIT[o], INIT[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(INIT[0x20..0x28].try_into().unwrap()) as usize;
        let (size, count) = (u16_at(0x36), u16_at(0x38));
        assert!(count > 0);
        for i in 0..count {
            let o = phoff + i * size;
            let kind = u32::from_le_bytes(INIT[o..o + 4].try_into().unwrap());
            assert_ne!(kind, 3, "PT_INTERP in the guest init");
        }
    }

    #[test]
    fn magics_the_kernel_takes() {
        assert_eq!(format_of(b"070701000"), Some("newc cpio"));
        assert_eq!(format_of(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some("zstd"));
        assert_eq!(format_of(b"BZh91AY"), Some("bzip2"));
        assert_eq!(format_of(b"./bin 0100755-0-0-22"), None);
        assert_eq!(format_of(b"0707"), None);
        assert_eq!(format_of(b""), None);
    }

    #[test]
    fn appended_archive_is_read_back_by_gnu_cpio() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        // An odd-sized "initrd" to exercise the padding (a gzip magic:
        // the contents are not checked beyond it).
        fs::write(&img, b"\x1f\x8bz").unwrap();
        let out = dir.path().join("out");
        let argv = [
            OsString::from("/bin/sh"),
            OsString::from(""),
            OsString::from("a b\nc"),
        ];
        let signals = crate::vm::Signals::block().unwrap();
        let watch = Watch {
            signals: &signals,
            deadline: None,
            timeout: None,
        };
        let src = Source {
            path: &img,
            limit: 1 << 20,
            limit_why: "the test's",
        };
        build(
            &src,
            &out,
            &Guest {
                argv: &argv,
                verbose: true,
            },
            &watch,
        )
        .unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(&bytes[..4], b"\x1f\x8bz\0");
        assert_eq!(
            &bytes[4..8],
            b"\0\0\0\0",
            "the zero block size that ends lz4"
        );
        assert_eq!(&bytes[8..14], b"070701");
        assert_eq!(bytes.len() % 4, 0);

        if std::process::Command::new("cpio")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipping the cpio check: GNU cpio is not installed");
            return;
        }
        let x = dir.path().join("x");
        fs::create_dir(&x).unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-id", "--quiet"])
            .current_dir(&x)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes[8..]).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(fs::read(x.join(".kvmrun/init")).unwrap(), INIT);
        assert_eq!(
            fs::read(x.join(".kvmrun/argv")).unwrap(),
            b"/bin/sh\0\0a b\nc\0"
        );
        assert!(x.join(".kvmrun/verbose").exists());
    }
}
