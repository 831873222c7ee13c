//! The initrd qemu boots: the image's initrd as given, then our guest init
//! as a second newc archive (issue 4).
//!
//! The kernel unpacks concatenated archives in order, each possibly
//! compressed, skipping NUL padding between them, and a later member of the
//! same name replaces an earlier one (kernel
//! `Documentation/driver-api/early-userspace/buffer-format.rst`). Ours only
//! adds `/.kvmrun/`, a name no image uses, and qemu boots with
//! `rdinit=/.kvmrun/init`, so the image's own `/init` stays what the program
//! runs. qemu takes a single `-initrd` file, so the two are concatenated
//! into a temporary file (`fs::copy` uses `copy_file_range`, so a large
//! initrd is copied in the kernel).
//!
//! The appended archive carries:
//! - `.kvmrun/init`: the static guest init built from `guest/init.rs`;
//! - `.kvmrun/argv`: the command, each argument NUL-terminated (no quoting
//!   and no kernel command-line length limit), empty for `/init`;
//! - `.kvmrun/verbose`: present with `-v`, so the init leaves the kernel's
//!   console messages on at power-off.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Context;
use mkinitrd::newc::{Header, Writer};

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

/// Writes `input` (a path, or `-` for stdin) followed by our archive to
/// `out`.
pub fn build(input: &Path, out: &Path, guest: &Guest) -> anyhow::Result<()> {
    if input.as_os_str() == "-" {
        let mut f = File::create(out).with_context(|| format!("creating {}", out.display()))?;
        io::copy(&mut io::stdin().lock(), &mut f).context("reading the initrd from stdin")?;
    } else {
        fs::copy(input, out).with_context(|| format!("reading initrd {}", input.display()))?;
    }
    let f = OpenOptions::new()
        .append(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    let len = f.metadata()?.len();
    let mut w = BufWriter::new(f);
    // The kernel looks for the next archive's magic at a multiple of 4
    // bytes from the start of the file (init/initramfs.c, `this_header`).
    let pad = len.next_multiple_of(4) - len;
    w.write_all(&[0u8; 4][..pad as usize])?;
    let w = append_guest(w, guest).with_context(|| format!("writing {}", out.display()))?;
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_data().or(Ok(())))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
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
    fn appended_archive_is_read_back_by_gnu_cpio() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        // An odd-sized "initrd" to exercise the padding.
        fs::write(&img, b"xyz").unwrap();
        let out = dir.path().join("out");
        let argv = [
            OsString::from("/bin/sh"),
            OsString::from(""),
            OsString::from("a b\nc"),
        ];
        build(
            &img,
            &out,
            &Guest {
                argv: &argv,
                verbose: true,
            },
        )
        .unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(&bytes[..4], b"xyz\0");
        assert_eq!(&bytes[4..10], b"070701");
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
        child.stdin.take().unwrap().write_all(&bytes[4..]).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(fs::read(x.join(".kvmrun/init")).unwrap(), INIT);
        assert_eq!(
            fs::read(x.join(".kvmrun/argv")).unwrap(),
            b"/bin/sh\0\0a b\nc\0"
        );
        assert!(x.join(".kvmrun/verbose").exists());
    }
}
