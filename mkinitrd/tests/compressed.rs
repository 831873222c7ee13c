//! `mkinitrd --compress`: each method's output is read back by its own
//! CLI (`gzip`, `zstd`, `lz4`, which CI installs) into the same archive as
//! without compression, two runs give the same bytes, `--gzip` is
//! `--compress gzip`, and a bad METHOD[:LEVEL] is a one-line usage error.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use testkit::{have, run::run, skip::skip};

fn mkinitrd(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = testkit::bins::tool("mkinitrd");
    cmd.arg("-C").arg(dir).args(args);
    run(cmd, stdin)
}

fn ok(out: Output) -> Vec<u8> {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "mkinitrd: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A tree of a few MiB, more than several gzip blocks (256 KiB) and than
/// one lz4 block (8 MiB), partly compressible text, partly noise.
fn tree(d: &Path) -> Vec<u8> {
    let mut text = Vec::new();
    let mut x: u64 = 1;
    while text.len() < 10 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        if r.is_multiple_of(5) {
            text.extend_from_slice(&x.to_le_bytes());
        } else {
            text.extend_from_slice([&b"usr/lib "[..], b"share/doc\n", b"libc.so.6 "][r % 3]);
        }
    }
    fs::write(d.join("big"), &text).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir(d.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    fs::write(d.join("dir/small"), b"small\n").unwrap_or_else(|e| panic!("{e}"));
    fs::write(d.join("empty"), b"").unwrap_or_else(|e| panic!("{e}"));
    b".\n./big\n./dir\n./dir/small\n./empty\n".to_vec()
}

/// `PROG ARGS` with `input` on stdin: its stdout.
fn filter(prog: &str, args: &[&str], input: &[u8]) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    run(cmd, input)
}

#[test]
fn each_method_is_read_back_by_its_cli() {
    let src = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = tree(src.path());
    let plain = ok(mkinitrd(src.path(), &["--owner", "0:0"], &input));
    for (spec, cli, magic) in [
        ("gzip", "gzip", &[0x1f, 0x8b, 8][..]),
        ("gzip:1", "gzip", &[0x1f, 0x8b, 8][..]),
        ("zstd", "zstd", &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ("zstd:19", "zstd", &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ("lz4", "lz4", &[0x02, 0x21, 0x4c, 0x18][..]),
    ] {
        let z = ok(mkinitrd(
            src.path(),
            &["--owner", "0:0", "--compress", spec],
            &input,
        ));
        assert!(z.starts_with(magic), "{spec}: starts with {:02x?}", &z[..4]);
        assert!(
            z.len() < plain.len() * 3 / 4,
            "{spec}: {} of {}",
            z.len(),
            plain.len()
        );
        let again = ok(mkinitrd(
            src.path(),
            &["--owner", "0:0", "--compress", spec],
            &input,
        ));
        assert!(z == again, "{spec}: two runs differ");
        if !have(cli) {
            skip(format!(
                "{cli} is not installed: {spec} output not checked by it"
            ));
            continue;
        }
        let t = filter(cli, &["-t"], &z);
        assert!(
            t.status.success(),
            "{cli} -t of --compress {spec}: {}",
            String::from_utf8_lossy(&t.stderr)
        );
        let d = filter(cli, &["-dc"], &z);
        assert!(
            d.status.success(),
            "{cli} -dc: {}",
            String::from_utf8_lossy(&d.stderr)
        );
        assert!(d.stdout == plain, "{spec}: decodes to another archive");
    }
    // One gzip member spanning the whole output: the kernel's unpacker
    // runs the decompressor once per compressed piece and calls a piece
    // that does not end on an archive boundary "junk" (init/initramfs.c).
    let z = ok(mkinitrd(src.path(), &["--owner", "0:0", "--gzip"], &input));
    assert!(
        z == ok(mkinitrd(
            src.path(),
            &["--owner", "0:0", "--compress", "gzip:6"],
            &input
        ))
    );
    let mut member = flate2::bufread::GzDecoder::new(&z[..]);
    let mut first = Vec::new();
    member
        .read_to_end(&mut first)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        first == plain,
        "the first gzip member holds the whole archive"
    );
    assert!(
        member.into_inner().is_empty(),
        "bytes after the first member"
    );
}

#[test]
fn bad_specs_are_usage_errors() {
    let src = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for bad in ["xz", "gzip:0", "gzip:10", "zstd:20", "lz4:2", "gzip:x", ""] {
        let out = mkinitrd(src.path(), &["--compress", bad], b".\n");
        assert_eq!(out.status.code(), Some(2), "--compress {bad:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("mkinitrd: --compress: "), "{err}");
        assert!(
            err.contains("give gzip[:1-9], zstd[:1-19] or lz4[:1]"),
            "{err}"
        );
    }
    let out = mkinitrd(src.path(), &["--gzip", "--compress", "zstd"], b".\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
