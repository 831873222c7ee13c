//! The vmlinux cache: extraction from every payload format the kernel
//! build makes, a second run that does not extract again, a new entry for a
//! changed bzImage, a damaged entry detected and rebuilt, concurrent
//! fillers, and the attacks on the cache directory. These run without
//! booting: the extraction is a library function, and the concurrent
//! kvmruns are given a qemu that is not one (`--qemu /bin/true`).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kvmrun::vmlinux::{self, Format};

/// A small vmlinux-like ELF64: a header, one PT_NOTE program header, and
/// (when `pvh`) the Xen note of type 18, then `filler` bytes.
fn fake_elf(pvh: bool, filler: &[u8]) -> Vec<u8> {
    let note: Vec<u8> = if pvh {
        let mut n = Vec::new();
        n.extend(4u32.to_le_bytes()); // namesz
        n.extend(4u32.to_le_bytes()); // descsz
        n.extend(18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
        n.extend(b"Xen\0");
        n.extend(0x0100_0000u32.to_le_bytes());
        n
    } else {
        let mut n = Vec::new();
        n.extend(4u32.to_le_bytes());
        n.extend(4u32.to_le_bytes());
        n.extend(3u32.to_le_bytes());
        n.extend(b"GNU\0");
        n.extend([0; 4]);
        n
    };
    let mut e = vec![0u8; 64];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2; // ELFCLASS64
    e[5] = 1; // little-endian
    e[6] = 1;
    e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    ph[0x20..0x28].copy_from_slice(&(note.len() as u64).to_le_bytes());
    e.extend(ph);
    e.extend(note);
    e.extend(filler);
    e
}

fn compress(format: Format, data: &[u8]) -> Vec<u8> {
    let mut out = match format {
        Format::Gzip => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Format::Xz => {
            let mut w = xz2::write::XzEncoder::new(Vec::new(), 1);
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Format::Lzma => {
            let opts = xz2::stream::LzmaOptions::new_preset(1).unwrap();
            let s = xz2::stream::Stream::new_lzma_encoder(&opts).unwrap();
            let mut w = xz2::write::XzEncoder::new_stream(Vec::new(), s);
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Format::Bzip2 => {
            let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Format::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        Format::Lz4 => {
            // `lz4 -l`: what mkinitrd --compress lz4 writes too.
            let mut w = compress::Encoder::new("lz4".parse().unwrap(), Vec::new()).unwrap();
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
    };
    // scripts/Makefile.lib `size_append`: the uncompressed size follows.
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// The cache entry, extracted or found, of the bzImage at `k`.
fn entry(k: &Path, cache: &Path) -> vmlinux::Entry {
    vmlinux::cached(&File::open(k).unwrap(), cache)
        .unwrap_or_else(|e| panic!("{}: {e:#}", k.display()))
        .expect("a bzImage")
}

/// A bzImage as the boot protocol lays it out: `setup_sects` sectors of
/// setup after the boot sector, then the protected-mode code holding the
/// payload at `payload_offset`. `tag` makes otherwise equal images differ.
fn fake_bzimage(payload: &[u8], tag: u8) -> Vec<u8> {
    let setup_sects = 3u8;
    let pm = (usize::from(setup_sects) + 1) * 512;
    let off = 0x200usize;
    let mut img = vec![0u8; pm + off];
    img[0x1f1] = setup_sects;
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&(off as u32).to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img[0x300] = tag;
    img.extend(payload);
    img.extend([0xcc; 64]); // the decompressor's code after the payload
    img
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, data).unwrap();
    p
}

fn entries(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn filler() -> Vec<u8> {
    (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect()
}

#[test]
fn every_payload_format_extracts_to_the_vmlinux() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache/kvmrun");
    let elf = fake_elf(true, &filler());
    for format in [
        Format::Gzip,
        Format::Xz,
        Format::Lzma,
        Format::Bzip2,
        Format::Lz4,
        Format::Zstd,
    ] {
        let payload = compress(format, &elf);
        assert_eq!(Format::detect(&payload), Some(format));
        let k = write(d.path(), "bzImage", &fake_bzimage(&payload, 0));
        let e = vmlinux::cached(&File::open(&k).unwrap(), &cache)
            .unwrap_or_else(|e| panic!("{format:?}: {e:#}"))
            .unwrap();
        assert!(e.pvh, "{format:?}");
        assert!(e.extracted, "{format:?}");
        assert_eq!(fs::read(&e.path).unwrap(), elf, "{format:?}");
    }
    // The cache directory is created 0700, and so is its missing parent
    // (the XDG base directory spec).
    for dir in [&cache, &d.path().join("cache")] {
        let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}

#[test]
fn a_second_run_does_not_extract_again() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let elf = fake_elf(true, &filler());
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Gzip, &elf), 0),
    );
    let first = entry(&k, &cache);
    assert!(first.extracted);
    let ino = fs::metadata(&first.path).unwrap().ino();
    let second = entry(&k, &cache);
    assert!(!second.extracted, "extracted again");
    assert_eq!(second.path, first.path);
    assert_eq!(fs::metadata(&second.path).unwrap().ino(), ino);
    assert_eq!(entries(&cache).len(), 1, "{:?}", entries(&cache));
}

#[test]
fn a_changed_bzimage_gets_a_new_entry() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let k = d.path().join("bzImage");
    let a = fake_elf(true, &filler());
    let b = fake_elf(true, b"another kernel");
    fs::write(&k, fake_bzimage(&compress(Format::Xz, &a), 0)).unwrap();
    let ea = entry(&k, &cache);
    fs::write(&k, fake_bzimage(&compress(Format::Xz, &b), 0)).unwrap();
    let eb = entry(&k, &cache);
    assert!(eb.extracted);
    assert_ne!(ea.path, eb.path);
    assert_eq!(fs::read(&eb.path).unwrap(), b);
    // Only the setup bytes differ: same vmlinux, yet a new key.
    fs::write(&k, fake_bzimage(&compress(Format::Xz, &b), 1)).unwrap();
    let ec = entry(&k, &cache);
    assert!(ec.extracted);
    assert_eq!(entries(&cache).len(), 3, "{:?}", entries(&cache));
}

#[test]
fn a_damaged_entry_is_detected_and_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let elf = fake_elf(true, &filler());
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Zstd, &elf), 0),
    );
    let e = entry(&k, &cache);
    // One byte flipped in place (a disk error, a stray write), then the
    // file cut short (a full disk).
    let mut bad = elf.clone();
    bad[5000] ^= 0x40;
    fs::write(&e.path, &bad).unwrap();
    let again = entry(&k, &cache);
    assert!(again.extracted, "the damaged entry was used");
    assert_eq!(fs::read(&again.path).unwrap(), elf);
    fs::write(&again.path, &elf[..100]).unwrap();
    let third = entry(&k, &cache);
    assert!(third.extracted, "the truncated entry was used");
    assert_eq!(fs::read(&third.path).unwrap(), elf);
    assert_eq!(entries(&cache).len(), 1, "{:?}", entries(&cache));
}

#[test]
fn a_kernel_without_the_pvh_note_is_said_so() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let elf = fake_elf(false, b"x");
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Gzip, &elf), 0),
    );
    let e = entry(&k, &cache);
    assert!(!e.pvh);
    // Not a bzImage at all (an ELF given as --kernel): nothing to extract.
    let k = write(d.path(), "vmlinux", &elf);
    assert!(vmlinux::cached(&File::open(&k).unwrap(), &cache)
        .unwrap()
        .is_none());
}

#[test]
fn a_payload_that_inflates_past_the_bound_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    // An ELF header then zeros: 257 MiB in about 250 KiB of gzip.
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    w.write_all(&fake_elf(true, b"")).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..257 {
        w.write_all(&zeros).unwrap();
    }
    let gz = w.finish().unwrap();
    let k = write(d.path(), "bzImage", &fake_bzimage(&gz, 0));
    let e = vmlinux::cached(&File::open(&k).unwrap(), &cache).unwrap_err();
    let msg = filtertool::one_line(&e);
    assert!(msg.contains("more than 256 MiB"), "{msg}");
    // Nothing left behind: no entry, no temporary file.
    assert!(entries(&cache).is_empty(), "{:?}", entries(&cache));
}

#[test]
fn the_cache_refuses_a_directory_others_can_write() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    fs::create_dir(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let elf = fake_elf(true, b"x");
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Gzip, &elf), 0),
    );
    let e = vmlinux::cached(&File::open(&k).unwrap(), &cache).unwrap_err();
    let msg = filtertool::one_line(&e);
    assert!(msg.contains("writable by others"), "{msg}");
    // A symlink as the cache directory is not followed either.
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&cache, &link).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(vmlinux::cached(&File::open(&k).unwrap(), &link).is_err());
}

#[test]
fn a_planted_entry_symlink_is_not_followed() {
    // Someone who could write the cache directory before it was made ours
    // left a symlink under the entry's name, pointing at their own kernel:
    // it is not booted, and what it points to is not touched.
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let elf = fake_elf(true, &filler());
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Gzip, &elf), 0),
    );
    let e = entry(&k, &cache);
    let theirs = write(d.path(), "theirs", &elf);
    fs::remove_file(&e.path).unwrap();
    std::os::unix::fs::symlink(&theirs, &e.path).unwrap();
    let again = entry(&k, &cache);
    assert!(again.extracted, "the symlink was used");
    assert!(!fs::symlink_metadata(&again.path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&theirs).unwrap(), elf);
}

#[test]
fn two_kvmruns_filling_the_cache_at_once_both_succeed() {
    let d = tempfile::tempdir().unwrap();
    let xdg = d.path().join("xdg");
    // Big enough that the two extractions overlap.
    let filler: Vec<u8> = (0..4_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let elf = fake_elf(true, &filler);
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Xz, &elf), 0),
    );
    let initrd = write(d.path(), "x.initrd", b"070701");
    for round in 0..2 {
        let kids: Vec<_> = (0..2)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_kvmrun"))
                    .env("XDG_CACHE_HOME", &xdg)
                    .env_remove("KVMRUN_KERNEL")
                    .args(["--accel", "tcg", "--qemu", "/bin/true", "--kernel"])
                    .arg(&k)
                    .arg(&initrd)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        for kid in kids {
            let out = kid.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("vmlinux"), "round {round}: {err}");
        }
    }
    let cache = xdg.join("kvmrun");
    let names = entries(&cache);
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(fs::read(cache.join(&names[0])).unwrap(), elf);
}

#[test]
fn the_debian_kernel_extracts_with_its_pvh_note() {
    let Some(k) = fs::read_dir("/boot").ok().and_then(|rd| {
        rd.filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("/vmlinuz-"))
    }) else {
        testkit::skip("no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let e = vmlinux::cached(&File::open(&k).unwrap(), &d.path().join("kvmrun"))
        .unwrap()
        .unwrap();
    assert!(e.pvh, "{}: no PVH note", k.display());
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut File::open(&e.path).unwrap(), &mut magic).unwrap();
    assert_eq!(&magic, b"\x7fELF");
}

#[test]
fn a_killed_fillers_temporary_file_is_removed_when_stale() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let elf = fake_elf(true, b"x");
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Gzip, &elf), 0),
    );
    vmlinux::cached(&File::open(&k).unwrap(), &cache).unwrap();
    // One left two hours ago (a SIGKILL mid-extraction), one being written
    // now by another kvmrun.
    let old = write(&cache, ".tmp-old", b"partial");
    let f = File::options().write(true).open(&old).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    drop(f);
    write(&cache, ".tmp-new", b"partial");
    vmlinux::cached(&File::open(&k).unwrap(), &cache).unwrap();
    let names = entries(&cache);
    assert!(!names.contains(&".tmp-old".to_string()), "{names:?}");
    assert!(names.contains(&".tmp-new".to_string()), "{names:?}");
}

#[test]
fn a_missing_home_is_not_created() {
    // An account whose home does not exist (Debian's nobody:
    // /nonexistent): the cache is given up, the home not made, even as
    // root.
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("nonexistent");
    let k = write(
        d.path(),
        "bzImage",
        &fake_bzimage(&compress(Format::Gzip, &fake_elf(true, b"x")), 0),
    );
    let e = vmlinux::cached(&File::open(&k).unwrap(), &home.join(".cache/kvmrun")).unwrap_err();
    let msg = filtertool::one_line(&e);
    assert!(msg.contains("No such file or directory"), "{msg}");
    assert!(!home.exists());
}

#[test]
fn an_entry_unused_for_a_month_is_removed_and_a_used_one_kept() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("kvmrun");
    let ka = write(
        d.path(),
        "a",
        &fake_bzimage(&compress(Format::Gzip, &fake_elf(true, b"kernel a")), 0),
    );
    let kb = write(
        d.path(),
        "b",
        &fake_bzimage(&compress(Format::Gzip, &fake_elf(true, b"kernel b")), 0),
    );
    let ea = entry(&ka, &cache);
    let eb = entry(&kb, &cache);
    let month = std::time::Duration::from_secs(86400 * (vmlinux::MAX_AGE_DAYS as u64 + 1));
    let then = std::time::SystemTime::now() - month;
    for e in [&ea, &eb] {
        File::open(&e.path).unwrap().set_modified(then).unwrap();
    }
    // Using a: a is stamped now and kept, b (unused for a month) goes.
    let again = entry(&ka, &cache);
    assert!(!again.extracted);
    assert!(!eb.path.exists(), "the stale entry is still there");
    let name = ea.path.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(entries(&cache), vec![name]);
    let age = fs::metadata(&ea.path)
        .unwrap()
        .modified()
        .unwrap()
        .elapsed()
        .unwrap_or_default();
    assert!(
        age.as_secs() < 3600,
        "the used entry was not stamped: {age:?}"
    );
    // A file that only looks old but is not an entry is left alone.
    let other = write(&cache, "notes.txt", b"mine");
    File::open(&other).unwrap().set_modified(then).unwrap();
    vmlinux::cached(&File::open(&ka).unwrap(), &cache).unwrap();
    assert!(other.exists());
}
