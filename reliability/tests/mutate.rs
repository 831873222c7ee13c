//! The stable-toolchain stand-in for fuzzing (cargo-fuzz needs nightly,
//! this runs in every `cargo test`; RELIABILITY.md): every
//! parser of `reliability_tests::parsers` (the same functions the
//! cargo-fuzz targets in ../fuzz call) runs over a deterministic stream
//! of mutations of the seed corpus in `fuzz/corpus/<target>/`. Any panic
//! fails the test and prints the input (and saves it under the temp dir)
//! so it can become a regression seed. `RELIABILITY_MUTATIONS` sets the
//! number of inputs per target (default 200 000: 1.2M in all, about 10 s).

use reliability_tests::parsers::TARGETS;
use reliability_tests::{workspace_root, Rng};
use std::fs;
use std::panic;

/// Byte strings that matter to the formats under test.
const TOKENS: &[&[u8]] = &[
    b" ",
    b"\n",
    b"\0",
    b"/",
    b"..",
    b"./",
    b"-",
    b":",
    b",",
    b"=",
    b"0100644-0-0-",
    b"0120777-",
    b"0020666-0-0-1:3",
    b"0040755-0-0-0",
    b"-whiteout",
    b".wh.",
    b"$ORIGIN",
    b"${LIB}",
    b"$PLATFORM",
    b"*",
    b"?",
    b"[",
    b"\\",
    b"ustar\0",
    b"ustar  \0",
    b"path=",
    b"size=",
    b"linkpath=",
    b"99999999999",
    b"4294967296",
    b"18446744073709551616",
    b"18446744073709551615",
    b"9223372036854775807",
    b"-1",
    b"\x7fELF",
    b"\xff\xff\xff\xff",
    b"dev=",
    b"ino=",
    b"mode=",
    b"uid=",
    b"gid=",
    b"rdev=",
    b"@",
    b"sha256:",
];

const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'0', b'7', b'9', b' ', b'\n'];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = input[a..b].to_vec();
                let i = rng.below(len + 1);
                input.splice(i..i, chunk);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(256)).min(other.len());
                    let i = rng.below(len + 1);
                    input.splice(i..i, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => {
                input.truncate(rng.below(len));
            }
            7 if len > 0 => {
                // A run of one byte: long names, huge numbers.
                let i = rng.below(len + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                let n = 1 + rng.below(300);
                input.splice(i..i, std::iter::repeat_n(b, n));
            }
            _ => {
                let i = rng.below(len + 1);
                let b = (rng.next_u64() & 0xff) as u8;
                input.insert(i, b);
            }
        }
    }
    input.truncate(1 << 16);
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = workspace_root().join("fuzz/corpus").join(target);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut out: Vec<Vec<u8>> = names.iter().map(|p| fs::read(p).unwrap()).collect();
    out.push(Vec::new());
    out
}

fn run_target(target: &str) {
    let (_, parse) = TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    let n: usize = std::env::var("RELIABILITY_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let seeds = seeds(target);
    // Every seed as is first: they must pass too.
    for s in &seeds {
        parse(s);
    }
    let seed = 0x9E37_79B9_7F4A_7C15
        ^ target
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
    let mut rng = Rng(seed | 1);
    let quiet = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let start = std::time::Instant::now();
    for i in 0..n {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, &mut input);
        let result = panic::catch_unwind(|| parse(&input));
        if let Err(e) = result {
            panic::set_hook(quiet);
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let path = std::env::temp_dir().join(format!("reliability-crash-{target}-{i}"));
            let _ = fs::write(&path, &input);
            panic!(
                "{target}: input #{i} panicked: {msg}\ninput saved to {} ({} bytes): {:?}",
                path.display(),
                input.len(),
                String::from_utf8_lossy(&input[..input.len().min(512)])
            );
        }
    }
    panic::set_hook(quiet);
    eprintln!(
        "{target}: {n} mutated inputs from {} seeds, no panic, {:.1} s",
        seeds.len(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn mutate_list() {
    run_target("list");
}

#[test]
fn mutate_fakeroot_state() {
    run_target("fakeroot_state");
}

#[test]
fn mutate_options() {
    run_target("options");
}

#[test]
fn mutate_tar() {
    run_target("tar");
}

#[test]
fn mutate_newc() {
    run_target("newc");
}

#[test]
fn mutate_initrd() {
    run_target("initrd");
}

/// The seeds whose size fields overflow (pax `size=2^64-1`, `2^64-512`,
/// `2^63-1`, `2^64`, GNU base-256 sizes of 2^64-1 and more): each must be
/// refused as a tar, by its size, without a panic (debug builds check
/// overflow, so a wrapped offset panics here) and without reading on.
#[test]
fn overflowing_tar_sizes_are_refused() {
    let dir = workspace_root().join("fuzz/corpus/tar");
    let mut seen = 0;
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains("-size-") {
            continue;
        }
        seen += 1;
        let data = fs::read(e.path()).unwrap();
        let mut r = &data[..];
        let walked = dockpack::tarfmt::walk(
            &mut r,
            |r, n| {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > r.len() {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
                *r = &r[n..];
                Ok(())
            },
            |_, _| Ok(true),
        );
        let err = walked.expect_err(&name).to_string();
        assert!(
            err.contains("out of range")
                || err.contains("not a number")
                || err.contains("bad pax size"),
            "{name}: {err}"
        );
    }
    assert!(seen >= 6, "the overflowing seeds are in {}", dir.display());
}

#[test]
fn mutate_elf() {
    run_target("elf");
}

#[test]
fn mutate_ldso() {
    run_target("ldso");
}

#[test]
fn mutate_sha256x() {
    run_target("sha256x");
}
