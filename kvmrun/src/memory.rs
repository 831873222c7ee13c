//! Guest memory: parsing `--mem` and the default size for an initrd.
//!
//! The kernel unpacks the initrd into a tmpfs capped at half of RAM; an
//! initrd that does not fit unpacks partly and the boot goes on broken
//! (kernel `Documentation/filesystems/ramfs-rootfs-initramfs.rst`;
//! docs/DESIGN.md, "Running in a VM").
//! The seed's `memcalc.py` gave 3 × the initrd + 64M, which is too little
//! for a small image: Debian's 6.1 kernel needs about 96 MiB on its own
//! (measured here under qemu: 80 MiB panics with "System is deadlocked on
//! memory", 96 MiB boots a hello-world initrd).
//!
//! So the default is measured, not guessed from the file size: we read the
//! archive's headers (through gzip, zstd or lz4 where it is compressed
//! so: what `mkinitrd --compress` writes) and add up what the tmpfs will
//! hold, then
//!
//! ```text
//! mem = 96 MiB + F + 2 × (T + 1 KiB × N) + 64 MiB   rounded up to MiB
//! ```
//!
//! - F: the initrd file, which qemu loads into guest RAM and the kernel
//!   frees only after unpacking it;
//! - T: the unpacked data, each regular file rounded up to 4 KiB pages;
//! - N: entries (inode + dentry, about 1 KiB each, outside the tmpfs size);
//! - twice the unpacked size because the rootfs tmpfs is capped at half of
//!   the RAM that is free when it is mounted, i.e. while the initrd file
//!   still occupies F;
//! - 64 MiB of headroom: half of it ends up as free tmpfs space, all of it
//!   as free RAM for the program.
//!
//! Measured here (Debian 6.1 kernel, TCG): the debootstrap minbase tree as
//! a 201 MB cpio (6.8k entries) got 711 MiB from this formula before the
//! headroom term; the guest saw MemTotal 654 MiB, a rootfs of 226 MiB with
//! 205 MiB used (only 22 MiB free: hence the headroom), and 414 MiB of RAM
//! free after boot. With the headroom: 775 MiB, MemTotal 716 MiB, rootfs
//! 257 MiB with 52 MiB free. A hello-world image gets 173 MiB.
//!
//! Guest RAM that is never touched costs the host nothing (qemu maps it
//! lazily), so erring high is cheap and erring low breaks the boot.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// What the kernel needs on its own (see the module comment).
pub const KERNEL_BASE: u64 = 96 * MIB;
/// Room for the program on top (see the module comment).
pub const HEADROOM: u64 = 64 * MIB;
/// Per-entry overhead outside the tmpfs size.
const ENTRY_OVERHEAD: u64 = 1024;
/// Compressions we do not decode here (xz, lzma, bzip2, lzo): assume
/// they unpack to 4 times their size, more than Debian's initrds do. A
/// guess is not good enough for what mkinitrd writes: `zstd:19` of a tree
/// of text packs well over 4 to 1, and the guest would get too little
/// RAM, so those are decoded.
const UNKNOWN_RATIO: u64 = 4;
/// A zstd frame (RFC 8878, 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// An lz4 legacy frame (lib/decompress_unlz4.c).
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// What an initrd needs once unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The size of the file qemu loads.
    pub file_bytes: u64,
    /// The tmpfs pages its regular files take.
    pub tmpfs_bytes: u64,
    /// The number of entries.
    pub entries: u64,
}

/// Parses a size: bytes, or a number with K, M, G or T (binary units, as
/// qemu's `-m`), optionally followed by `B` or `iB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("not a memory size: {s:?} (try 512M or 1G)");
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes < 16 * MIB {
        return Err(format!(
            "{s:?} is too little memory for a Linux guest (at least 16M)"
        ));
    }
    Ok(bytes)
}

/// This host's physical memory: no VM it starts can hold more, so it
/// bounds what `kvmrun -` reads when `--mem` is not given.
pub fn host_ram() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    let pages = sysconf(SysconfVar::_PHYS_PAGES).ok().flatten();
    let size = sysconf(SysconfVar::PAGE_SIZE).ok().flatten();
    match (pages.map(u64::try_from), size.map(u64::try_from)) {
        (Some(Ok(p)), Some(Ok(s))) if p > 0 && s > 0 => p.saturating_mul(s),
        _ => u64::MAX,
    }
}

/// The `-m` argument: whole MiB, rounded up.
pub fn qemu_arg(bytes: u64) -> String {
    format!("{}M", bytes.div_ceil(MIB))
}

/// The default guest RAM for an initrd (formula in the module comment).
pub fn default_size(u: &Usage) -> u64 {
    let unpacked = u
        .tmpfs_bytes
        .saturating_add(u.entries.saturating_mul(ENTRY_OVERHEAD));
    let need = KERNEL_BASE
        .saturating_add(u.file_bytes)
        .saturating_add(unpacked.saturating_mul(2))
        .saturating_add(HEADROOM);
    need.div_ceil(MIB).saturating_mul(MIB)
}

/// Measures an initrd file. `limit` bounds what it may unpack to: an
/// archive (a gzip bomb, or 4 GiB members) that would need more is an
/// error rather than minutes of decompression for a VM that cannot hold it.
pub fn measure(path: &Path, limit: u64) -> io::Result<Usage> {
    let f = File::open(path)?;
    let file_bytes = f.metadata()?.len();
    let mut u = measure_reader(BufReader::with_capacity(256 * 1024, f), limit)?;
    u.file_bytes = file_bytes;
    Ok(u)
}

/// Measures an initrd stream: concatenated newc archives, each possibly
/// gzip-compressed, with NUL padding between them (the kernel's
/// `unpack_to_rootfs` accepts the same). `file_bytes` is left 0.
pub fn measure_reader<R: BufRead>(mut r: R, limit: u64) -> io::Result<Usage> {
    let mut u = Usage::default();
    scan(&mut r, &mut u, limit, Level::File)?;
    Ok(u)
}

/// Where [`scan`] is: in the initrd file, or inside one of its compressed
/// pieces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    File,
    Decompressed,
}

/// Scans archives and NUL padding; in the file, compressed pieces too.
/// Inside a compressed piece the kernel takes only archives and padding
/// (init/initramfs.c, `flush_buffer`: anything else is "junk within
/// compressed archive"), so compressed data there is refused rather than
/// decoded again: a gzip of a gzip of … would otherwise nest one decoder
/// and its buffers per level, without bound.
fn scan(r: &mut dyn BufRead, u: &mut Usage, limit: u64, level: Level) -> io::Result<()> {
    // NUL padding takes no room in the guest, but a compressed stream of
    // nothing else (zstd's RLE blocks hold 128 KiB in 4 bytes: a 100 MB
    // file is terabytes) would keep us decoding for hours: padding counts
    // against the limit too.
    let mut padding = 0u64;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let nuls = buf.iter().take_while(|&&b| b == 0).count();
        if nuls > 0 {
            r.consume(nuls);
            padding = padding.saturating_add(nuls as u64);
            if padding > limit {
                return Err(invalid(format!(
                    "it holds more than {} MiB of padding",
                    limit / MIB
                )));
            }
            continue;
        }
        if buf[0] == b'0' {
            scan_newc(r, u, limit)?;
            continue;
        }
        if level == Level::Decompressed {
            let shown: Vec<u8> = buf.iter().take(8).copied().collect();
            return Err(invalid(format!(
                "a compressed piece holds {} where the kernel takes only a cpio archive",
                filtertool::quote::quote(&shown)
            )));
        }
        if buf.starts_with(&[0x1f, 0x8b]) || (buf.len() == 1 && buf[0] == 0x1f) {
            // bufread::GzDecoder consumes exactly one gzip member from `r`,
            // so what follows it is scanned next.
            let gz = flate2::bufread::GzDecoder::new(&mut *r);
            let mut inner = BufReader::with_capacity(256 * 1024, gz);
            scan(&mut inner, u, limit, Level::Decompressed)?;
        } else if buf.starts_with(&ZSTD_MAGIC) {
            // One frame, through libzstd (what compresses it, in the
            // compress crate): about three times ruzstd's speed, which is
            // half a second on the Debian minbase tree at every boot.
            // Over a BufRead with `single_frame`, it consumes exactly the
            // frame, so what follows is scanned next.
            let zstd = zstd::stream::read::Decoder::with_buffer(&mut *r)?.single_frame();
            let mut inner = BufReader::with_capacity(256 * 1024, zstd);
            scan(&mut inner, u, limit, Level::Decompressed)?;
        } else if buf.starts_with(&LZ4_LEGACY_MAGIC) {
            // To its zero block size or the end (compress::lz4legacy).
            let lz4 = compress::lz4legacy::Decoder::new(&mut *r)?;
            let mut inner = BufReader::with_capacity(256 * 1024, lz4);
            scan(&mut inner, u, limit, Level::Decompressed)?;
        } else {
            let rest = io::copy(r, &mut io::sink())?;
            u.tmpfs_bytes = u
                .tmpfs_bytes
                .saturating_add(rest.saturating_mul(UNKNOWN_RATIO));
            return Ok(());
        }
    }
}

/// One newc archive, up to and including its trailer, read with the
/// format's own reader ([`mkinitrd::newc::Reader`]).
fn scan_newc(r: &mut dyn BufRead, u: &mut Usage, limit: u64) -> io::Result<()> {
    let mut archive = mkinitrd::newc::Reader::new(r);
    while let Some(h) = archive.next_header()? {
        u.entries += 1;
        if h.mode & 0o170000 == 0o100000 {
            u.tmpfs_bytes = u
                .tmpfs_bytes
                .saturating_add(u64::from(h.filesize).next_multiple_of(PAGE));
        }
        let unpacked = u
            .tmpfs_bytes
            .saturating_add(u.entries.saturating_mul(ENTRY_OVERHEAD));
        if unpacked > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it unpacks to more than {} MiB", limit / MIB),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkinitrd::newc::{Header, Writer};

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_size("1G"), Ok(1024 * MIB));
        assert_eq!(parse_size("1gib"), Ok(1024 * MIB));
        assert_eq!(parse_size("131072k"), Ok(128 * MIB));
        assert_eq!(parse_size("134217728"), Ok(128 * MIB));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("1M").is_err(), "too small for a kernel");
        assert!(parse_size("99999999999T").is_err(), "overflow");
        assert_eq!(qemu_arg(128 * MIB + 1), "129M");
    }

    #[test]
    fn small_images_get_the_kernel_and_headroom() {
        // A hello-world initrd: a few MB.
        let u = Usage {
            file_bytes: 5 * MIB,
            tmpfs_bytes: 4 * MIB,
            entries: 20,
        };
        assert_eq!(default_size(&u), (96 + 5 + 8 + 64) * MIB + MIB);
        assert!(default_size(&Usage::default()) >= 128 * MIB);
    }

    #[test]
    fn big_images_get_twice_their_unpacked_size_plus_the_kernel() {
        // About the debootstrap minbase tree: 200 MB in 6.8k entries.
        let u = Usage {
            file_bytes: 190 * MIB,
            tmpfs_bytes: 200 * MIB,
            entries: 6800,
        };
        let m = default_size(&u);
        let unpacked = 200 * MIB + 6800 * 1024;
        assert_eq!(
            m,
            (96 * MIB + 190 * MIB + 2 * unpacked + 64 * MIB).div_ceil(MIB) * MIB
        );
        // The tmpfs cap (half of what is free while the file is loaded)
        // holds what we unpack, with room to spare.
        assert!((m - 96 * MIB - u.file_bytes) / 2 >= unpacked + 32 * MIB);
        // More than the seed's 3x + 64M would give for a small image.
        let small = Usage {
            file_bytes: 10 * MIB,
            tmpfs_bytes: 10 * MIB,
            entries: 10,
        };
        assert!(default_size(&small) > 3 * 10 * MIB + 64 * MIB);
    }

    fn archive(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for (i, (name, mode, data)) in files.iter().enumerate() {
            let h = Header {
                name: name.as_bytes().to_vec(),
                ino: i as u32 + 1,
                mode: *mode,
                nlink: 1,
                filesize: data.len() as u32,
                ..Header::default()
            };
            w.append(&h, &mut &data[..]).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn measures_concatenated_and_gzipped_archives() {
        let big = vec![7u8; 5000];
        let a = archive(&[
            ("bin", 0o40755, b""),
            ("bin/x", 0o100755, &big),
            ("l", 0o120777, b"bin/x"),
        ]);
        let u = measure_reader(&a[..], u64::MAX).unwrap();
        assert_eq!(
            u,
            Usage {
                file_bytes: 0,
                tmpfs_bytes: 8192,
                entries: 3
            }
        );

        let b = archive(&[("y", 0o100644, b"hi")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &b).unwrap();
        let gz = gz.finish().unwrap();
        // gzip, then padding, then a plain archive: as kvmrun builds them.
        let mut all = gz.clone();
        all.extend_from_slice(&[0, 0, 0]);
        all.extend_from_slice(&a);
        let u = measure_reader(&all[..], u64::MAX).unwrap();
        assert_eq!(
            u,
            Usage {
                file_bytes: 0,
                tmpfs_bytes: 8192 + 4096,
                entries: 4
            }
        );
    }

    /// What `mkinitrd --compress` writes, followed by padding and a plain
    /// archive, as kvmrun builds the guest's initrd; and packed far over
    /// the 4 to 1 a guess would assume.
    #[test]
    fn measures_zstd_and_lz4_archives_by_decoding_them() {
        let zeros = vec![0u8; 1 << 20];
        let a = archive(&[("z", 0o100644, &zeros), ("y", 0o100644, b"hi")]);
        let plain = archive(&[("x", 0o100644, b"1")]);
        for spec in ["zstd:19", "lz4"] {
            let mut e = compress::Encoder::new(spec.parse().unwrap(), Vec::new()).unwrap();
            std::io::Write::write_all(&mut e, &a).unwrap();
            let mut all = e.finish().unwrap();
            assert!(all.len() * 50 < a.len(), "{spec}: {} bytes", all.len());
            all.extend_from_slice(&[0, 0, 0, 0]);
            all.extend_from_slice(&plain);
            let u = measure_reader(&all[..], u64::MAX).unwrap();
            assert_eq!(
                u,
                Usage {
                    file_bytes: 0,
                    tmpfs_bytes: (1 << 20) + 4096 + 4096,
                    entries: 3
                },
                "{spec}"
            );
            // A bomb of padding is refused at the limit, not decoded
            // to its end.
            let mut e = compress::Encoder::new(spec.parse().unwrap(), Vec::new()).unwrap();
            for _ in 0..64 {
                std::io::Write::write_all(&mut e, &zeros).unwrap();
            }
            let bomb = e.finish().unwrap();
            let err = measure_reader(&bomb[..], 16 << 20).unwrap_err();
            assert!(err.to_string().contains("padding"), "{spec}: {err}");
            // Compressed data inside compressed data: refused, not
            // decoded level after level.
            let mut twice = compress::Encoder::new(spec.parse().unwrap(), Vec::new()).unwrap();
            std::io::Write::write_all(&mut twice, &bomb).unwrap();
            let twice = twice.finish().unwrap();
            let err = measure_reader(&twice[..], u64::MAX).unwrap_err();
            assert!(err.to_string().contains("only a cpio"), "{spec}: {err}");
            // Damaged: an error, as the kernel's unpacking would fail.
            let n = all.len() / 2;
            all[n] ^= 0x55;
            all.truncate(n + 8);
            assert!(measure_reader(&all[..], u64::MAX).is_err(), "{spec}");
        }
    }

    #[test]
    fn unknown_compression_is_estimated_and_garbage_refused() {
        let xz = [0xfdu8, 0x37, 0x7a, 0x58, 0x5a, 0, 3, 4];
        let u = measure_reader(&xz[..], u64::MAX).unwrap();
        assert_eq!(u.tmpfs_bytes, 8 * UNKNOWN_RATIO);
        let mut bad = archive(&[("x", 0o100644, b"1")]);
        bad[3] = b'9';
        assert!(measure_reader(&bad[..], u64::MAX).is_err());
        let a = archive(&[("x", 0o100644, b"123456")]);
        assert!(measure_reader(&a[..120], u64::MAX).is_err(), "truncated");
        // Bounded: more than the limit unpacked is an error.
        let big = vec![0u8; 3 * PAGE as usize];
        let a = archive(&[("x", 0o100644, &big), ("y", 0o100644, &big)]);
        assert!(measure_reader(&a[..], 4 * PAGE).is_err());
        assert!(measure_reader(&a[..], 8 * PAGE).is_ok());
    }
}
