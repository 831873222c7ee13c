//! `fileids` through the one resolver is still byte-identical to the
//! seed's `fileids.py` on a whole Debian tree (`$BENCH_TREE`, e.g. a
//! debootstrap minbase) fed `find . | LC_ALL=C sort`; devices are the
//! one difference, `MAJOR:MINOR` as the list format says where the seed
//! prints `0`.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

fn run(cmd: Command, input: &[u8]) -> Vec<u8> {
    let what = format!("{cmd:?}");
    let out = testkit::run(cmd, input);
    assert!(out.status.success(), "{what}");
    out.stdout
}

#[test]
fn byte_identical_to_the_seed_on_the_bench_tree() {
    let Some(tree) = std::env::var_os("BENCH_TREE") else {
        testkit::skip("BENCH_TREE is not set (a debootstrap minbase tree to compare on)");
        return;
    };
    if Command::new("python3").arg("--version").output().is_err() {
        testkit::skip("python3 is not installed, so the seed's fileids.py cannot run");
        return;
    }
    let tree = Path::new(&tree);
    let mut find = Command::new("sh");
    find.args(["-c", "find . | LC_ALL=C sort"])
        .current_dir(tree);
    let names = run(find, b"");
    let mut seed = Command::new("python3");
    seed.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_fileids.py"))
        .current_dir(tree);
    let want = run(seed, &names);
    let mut ours = Command::new(assert_cmd::cargo::cargo_bin("fileids"));
    ours.current_dir(tree);
    let got = run(ours, &names);
    let (want, got): (Vec<&[u8]>, Vec<&[u8]>) = (
        want.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect(),
        got.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect(),
    );
    assert_eq!(want.len(), got.len());
    let mut devices = 0;
    for (w, g) in want.iter().zip(&got) {
        if w == g {
            continue;
        }
        // A device: the seed's `0` against our MAJOR:MINOR.
        let space = w.iter().rposition(|&b| b == b' ').unwrap();
        let name = std::ffi::OsStr::from_bytes(&w[..space]);
        let m = std::fs::symlink_metadata(tree.join(name)).unwrap();
        let rdev = m.rdev();
        let want_dev = format!(
            "{}{}:{}",
            String::from_utf8_lossy(&w[..w.len() - 1]),
            filelist::owner::major(rdev),
            filelist::owner::minor(rdev)
        );
        assert!(
            m.file_type().is_char_device() || m.file_type().is_block_device(),
            "{} differs:\nseed    {}\nfileids {}",
            String::from_utf8_lossy(&w[..space]),
            String::from_utf8_lossy(w),
            String::from_utf8_lossy(g)
        );
        assert_eq!(String::from_utf8_lossy(g), want_dev);
        devices += 1;
    }
    eprintln!(
        "{} lines identical, {devices} device lines as MAJOR:MINOR",
        want.len() - devices
    );
}
