use super::*;
use std::io::Read;

/// Compressible, not trivially repetitive input: words from a small
/// vocabulary chosen by a linear congruential generator, with some noise
/// bytes, so matches are found at all distances.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"usr",
        b"lib",
        b"x86_64-linux-gnu",
        b"share",
        b"doc",
        b"0100644-0-0-",
        b"\n",
        b"ELF",
        b"\0\0\0\0",
        b"copyright",
        b"changelog.Debian.gz",
        b"/",
        b" ",
    ];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        if r.is_multiple_of(7) {
            out.push((r >> 8) as u8);
        } else {
            out.extend_from_slice(WORDS[r % WORDS.len()]);
        }
    }
    out.truncate(len);
    out
}

fn spec(s: &str) -> Spec {
    s.parse().unwrap()
}

fn threads(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// Compresses `data` written in pieces of `chunk` bytes.
fn compress(spec: Spec, n: usize, data: &[u8], chunk: usize) -> Vec<u8> {
    let mut e = Encoder::with_threads(spec, threads(n), Vec::new()).unwrap();
    for piece in data.chunks(chunk.max(1)) {
        e.write_all(piece).unwrap();
    }
    e.finish().unwrap()
}

fn decode(method: Method, z: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match method {
        Method::Gzip => {
            // Exactly one member: a plain GzDecoder stops after the first,
            // so anything left over would show as missing output or bytes.
            let mut d = flate2::bufread::GzDecoder::new(z);
            d.read_to_end(&mut out).unwrap();
            let mut rest = Vec::new();
            d.into_inner().read_to_end(&mut rest).unwrap();
            assert!(
                rest.is_empty(),
                "{} bytes after the gzip member",
                rest.len()
            );
        }
        Method::Zstd => {
            out = zstd::stream::decode_all(z).unwrap();
        }
        Method::Lz4 => {
            assert_eq!(&z[..4], &LZ4_LEGACY_MAGIC);
            let mut rest = &z[4..];
            while !rest.is_empty() {
                let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                let block = lz4_flex::block::decompress(&rest[4..4 + n], LZ4_BLOCK).unwrap();
                assert!(block.len() <= LZ4_BLOCK);
                out.extend_from_slice(&block);
                rest = &rest[4 + n..];
            }
        }
    }
    out
}

#[test]
fn specs_parse_and_refuse() {
    assert_eq!(
        spec("gzip"),
        Spec {
            method: Method::Gzip,
            level: 6
        }
    );
    assert_eq!(
        spec("gzip:9"),
        Spec {
            method: Method::Gzip,
            level: 9
        }
    );
    assert_eq!(
        spec("zstd"),
        Spec {
            method: Method::Zstd,
            level: 3
        }
    );
    assert_eq!(
        spec("zstd:19"),
        Spec {
            method: Method::Zstd,
            level: 19
        }
    );
    assert_eq!(
        spec("lz4"),
        Spec {
            method: Method::Lz4,
            level: 1
        }
    );
    assert_eq!(
        spec("lz4:1"),
        Spec {
            method: Method::Lz4,
            level: 1
        }
    );
    assert_eq!(spec("zstd").name(), "zstd");
    for bad in [
        "", "gz", "gzip:", "gzip:0", "gzip:10", "gzip:+5", "zstd:20", "zstd:-1", "lz4:2", "xz",
        "gzip:6:1", "GZIP",
    ] {
        let e = bad.parse::<Spec>().unwrap_err();
        assert!(
            e.contains("give gzip[:1-9], zstd[:1-19] or lz4[:1]"),
            "{bad:?}: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn round_trips() {
    for (s, len) in [
        ("gzip", 3 << 20),
        ("gzip:1", 1 << 20),
        ("gzip:9", 600_000),
        ("zstd", 3 << 20),
        ("zstd:19", 1 << 20),
        ("lz4", 20 << 20),
    ] {
        let data = sample(len, 1);
        let sp = spec(s);
        let z = compress(sp, 2, &data, 65536);
        assert!(
            z.len() < data.len() / 2,
            "{s}: {} of {}",
            z.len(),
            data.len()
        );
        assert!(decode(sp.method, &z) == data, "{s}: round trip");
    }
}

#[test]
fn empty_input() {
    for s in ["gzip", "zstd", "lz4"] {
        let sp = spec(s);
        let z = compress(sp, 2, &[], 1);
        assert!(decode(sp.method, &z).is_empty(), "{s}");
    }
    // Only the magic: the legacy frame has no end marker.
    assert_eq!(compress(spec("lz4"), 1, &[], 1), LZ4_LEGACY_MAGIC);
}

#[test]
fn gzip_header_has_no_name_and_no_time() {
    let z = compress(spec("gzip"), 2, b"hello", 1);
    assert_eq!(&z[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    // Trailer: CRC-32 and size of the input.
    assert_eq!(
        &z[z.len() - 8..z.len() - 4],
        &crc32fast::hash(b"hello").to_le_bytes()
    );
    assert_eq!(&z[z.len() - 4..], &5u32.to_le_bytes());
}

/// Block boundaries at exact multiples, one byte either side.
#[test]
fn sizes_around_block_boundaries() {
    for (s, size) in [("gzip", GZIP_BLOCK), ("lz4", LZ4_BLOCK)] {
        let sp = spec(s);
        for len in [size - 1, size, size + 1, 2 * size] {
            let data = sample(len, 7);
            let z = compress(sp, 2, &data, 1 << 20);
            assert!(decode(sp.method, &z) == data, "{s} {len}");
        }
    }
}

/// Same bytes whatever the thread count and however the input is cut.
#[test]
fn output_is_independent_of_threads_and_chunking() {
    for (s, len) in [
        ("gzip", 2 << 20),
        ("zstd", 12 << 20),
        ("zstd:19", 3 << 20),
        ("lz4", 18 << 20),
    ] {
        let sp = spec(s);
        let data = sample(len, 3);
        let reference = compress(sp, 1, &data, len);
        for (n, chunk) in [(2, 1), (2, 4093), (4, 65536), (2, 1 << 20), (3, 7_777_777)] {
            // One-byte writes of megabytes are slow in a debug build: one
            // megabyte of them is enough to show it.
            let (data, reference) = if chunk == 1 {
                let d = &data[..1 << 20];
                (d, compress(sp, 1, d, 1 << 20))
            } else {
                (&data[..], reference.clone())
            };
            let z = compress(sp, n, data, chunk);
            assert!(
                z == reference,
                "{s}: {n} threads, {chunk}-byte writes differ"
            );
        }
    }
}

/// zstd's multithreaded frame differs from its single-threaded one: the
/// reason `nbWorkers` is never 0 here (zstd(1), `--single-thread`).
#[test]
fn zstd_multithreaded_differs_from_single_threaded() {
    let data = sample(6 << 20, 5);
    let mt = compress(spec("zstd"), 1, &data, 1 << 20);
    let st = zstd::stream::encode_all(&data[..], 3).unwrap();
    assert_ne!(mt, st);
    assert!(zstd::stream::decode_all(&st[..]).unwrap() == data);
}

/// Input whose character changes every 40 KiB, between `sample` text and
/// bytes that do not compress: what zstd 1.5.7's block pre-splitter cuts
/// blocks at (a layer's text files next to its compressed ones).
fn mixed(len: usize) -> Vec<u8> {
    let text = sample(len, 3);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    for (i, piece) in text.chunks(40 << 10).enumerate() {
        if i % 2 == 0 {
            out.extend_from_slice(piece);
        } else {
            for _ in 0..piece.len() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.push(x as u8);
            }
        }
    }
    out
}

/// The pre-splitter is off (compress/src/zstdmt.rs says why): the frame
/// differs from what libzstd's defaults make of input it splits, with the
/// same level, workers and checksum, and still decodes.
#[test]
fn zstd_presplitter_is_off() {
    let data = mixed(4 << 20);
    let ours = compress(spec("zstd"), 2, &data, 1 << 16);
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.multithread(2).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(&data).unwrap();
    let defaults = e.finish().unwrap();
    assert_ne!(ours, defaults);
    assert!(decode(Method::Zstd, &ours) == data);
}

#[test]
fn worker_error_is_an_io_error() {
    for panic in [false, true] {
        let kind = Kind::Failing { fail_at: 3, panic };
        let mut b = Blocks::new(kind, 2, Vec::new()).unwrap();
        let data = sample(20_000, 9);
        let mut err = None;
        for piece in data.chunks(100) {
            let mut piece = piece;
            while !piece.is_empty() {
                match b.write(piece) {
                    Ok(n) => piece = &piece[n..],
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            if err.is_some() {
                break;
            }
        }
        let e = match err {
            Some(e) => e,
            None => b.finish().expect_err("the failing block is reported"),
        };
        let want = if panic {
            "a compression thread panicked"
        } else {
            "test worker fails on block 3"
        };
        assert_eq!(e.to_string(), want);
    }
    // Finishing after a failure fails too, and writes nothing more.
    let mut b = Blocks::new(
        Kind::Failing {
            fail_at: 0,
            panic: false,
        },
        1,
        Vec::new(),
    )
    .unwrap();
    b.write(&[0; 1000]).unwrap();
    assert!(b.finish().is_err());
}

#[test]
fn writer_error_is_returned() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    for s in ["gzip", "zstd", "lz4"] {
        let r = Encoder::new(spec(s), Full).and_then(|mut e| {
            e.write_all(&sample(1 << 20, 2))?;
            e.finish().map(|_| ())
        });
        assert_eq!(
            r.err().map(|e| e.kind()),
            Some(io::ErrorKind::StorageFull),
            "{s}"
        );
    }
}

/// The bytes of each method for a fixed input, so a compressor update
/// that changes them is seen (re-pinning: see the crate doc).
#[test]
fn pinned_digests() {
    use sha2::{Digest, Sha256};
    let data = sample(10 << 20, 11);
    let want = [
        (
            "gzip",
            "64f9c9eb38761b7856c95a05aea2123e0a1eefef8b580bf3894a899b54b5fec4",
        ),
        (
            "gzip:9",
            "bb777a8421ab98843e0d86bb601a92199da96094216da1c98e420313073cf7c3",
        ),
        (
            "zstd",
            "8464c038a73567f82b92a55ba51a5bc948e5ec6592536fdab9a4980d7911229e",
        ),
        (
            "zstd:19",
            "c3a734635d0058a768cfbc0e1c13177401c0f637982374b5c17b6bf8a1e53106",
        ),
        (
            "zstd mixed",
            "8314b8b1bd825b9bdb23c658d494efa52ca5ad00c58dc2b3382286539678ec94",
        ),
        (
            "lz4",
            "487df8802f8e0542babcf16c1488a55eae8d77d94262c22d849020c74ce3bc9b",
        ),
    ];
    let mixed = mixed(4 << 20);
    let mut wrong = Vec::new();
    for (s, digest) in want {
        // zstd's pre-splitter setting shows only on input it would split.
        let data = if s.ends_with("mixed") { &mixed } else { &data };
        let z = compress(spec(s.trim_end_matches(" mixed")), 2, data, 1 << 16);
        let got: String = Sha256::digest(&z)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!("(\"{s}\", \"{got}\"),");
        if got != digest {
            wrong.push(s);
        }
    }
    assert!(wrong.is_empty(), "output changed for {wrong:?}");
}
