//! Scale with bounded resources (streams stay streams: memory must not
//! grow with the input): a million list entries through `fileids` and `layerdiff` with peak RSS
//! measured by `wait4`, a 5 GiB sparse file through `dockpack layer` (PAX
//! size) and `mkinitrd` (refused: newc sizes are 32-bit), and a tree of
//! 100k files through both packers. Nothing here stores more than a few
//! tens of MB on disk: the 5 GiB file is sparse and its archive is piped
//! straight into `tar -t`.

use reliability_tests::{count, run_streaming, tool, wait_rusage};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

/// The memory bound for the list filters: 64 MiB whatever the length of
/// the list.
const RSS_LIMIT_KIB: i64 = 64 * 1024;

const MILLION: u64 = 1_000_000;

#[test]
fn fileids_million_entries_bounded_memory() {
    let mut cmd = tool("fileids");
    cmd.args(["-C", "/"]);
    let mut lines = 0;
    let mut first = String::new();
    let out = run_streaming(
        cmd,
        |w| {
            for _ in 0..MILLION {
                w.write_all(b"./dev/null\n")?;
            }
            Ok(())
        },
        |r| {
            let mut br = BufReader::with_capacity(1 << 16, r);
            br.read_line(&mut first).unwrap();
            lines = 1 + count(&mut br).1;
        },
    );
    eprintln!(
        "fileids, {MILLION} entries: {:?}, peak RSS {} KiB, first line {first:?}",
        out.status, out.max_rss_kib
    );
    assert!(out.status.success(), "stderr {:?}", out.stderr);
    assert_eq!(lines, MILLION);
    assert_eq!(first, "./dev/null 0020666-0-0-1:3\n");
    assert!(
        out.max_rss_kib < RSS_LIMIT_KIB,
        "fileids peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        out.max_rss_kib
    );
}

/// One list line of the generated lists. Every tenth entry is a regular
/// file, the rest directories; `changed` alters the line.
fn line(i: u64, changed: bool) -> String {
    if i.is_multiple_of(10) {
        let digest = if changed { i + (1 << 40) } else { i };
        format!("./e{i:07} 0100644-0-0-{digest:064x}\n")
    } else {
        let mode = if changed { "0040700" } else { "0040755" };
        format!("./e{i:07} {mode}-0-0-0\n")
    }
}

fn in_base(i: u64) -> bool {
    i % 7 != 3
}
fn in_new(i: u64) -> bool {
    i % 11 != 5
}
fn changed(i: u64) -> bool {
    i.is_multiple_of(13)
}

#[test]
fn layerdiff_million_entries_bounded_memory() {
    // BASE on disk (about 30 MB, removed with the temp dir); NEW streamed on stdin.
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.list");
    {
        let mut w = std::io::BufWriter::new(fs::File::create(&base).unwrap());
        for i in (0..MILLION).filter(|&i| in_base(i)) {
            w.write_all(line(i, false).as_bytes()).unwrap();
        }
        w.flush().unwrap();
    }
    let expected_new = (0..MILLION)
        .filter(|&i| in_new(i) && (!in_base(i) || changed(i)))
        .count() as u64;
    let expected_whiteouts = (0..MILLION).filter(|&i| in_base(i) && !in_new(i)).count() as u64;

    let mut cmd = tool("layerdiff");
    cmd.arg("--whiteouts").arg(&base).arg("-");
    let (mut total, mut whiteouts) = (0u64, 0u64);
    let out = run_streaming(
        cmd,
        |w| {
            for i in (0..MILLION).filter(|&i| in_new(i)) {
                w.write_all(line(i, changed(i)).as_bytes())?;
            }
            Ok(())
        },
        |r| {
            let br = BufReader::with_capacity(1 << 16, r);
            for l in br.split(b'\n') {
                let l = l.unwrap();
                total += 1;
                if l.ends_with(b"-whiteout") {
                    whiteouts += 1;
                }
            }
        },
    );
    eprintln!(
        "layerdiff --whiteouts, two lists of ~{MILLION} lines: {:?}, peak RSS {} KiB, {total} lines out ({whiteouts} whiteouts)",
        out.status, out.max_rss_kib
    );
    assert!(out.status.success(), "stderr {:?}", out.stderr);
    assert_eq!(whiteouts, expected_whiteouts);
    assert_eq!(total, expected_new + expected_whiteouts);
    assert!(
        out.max_rss_kib < RSS_LIMIT_KIB,
        "layerdiff peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        out.max_rss_kib
    );
}

const FIVE_GIB: u64 = 5 << 30;

fn sparse_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let f = fs::File::create(tmp.path().join("huge")).unwrap();
    f.set_len(FIVE_GIB).unwrap();
    // Sorted after `huge`: the packers take sorted input only.
    fs::write(tmp.path().join("later"), b"after the big one\n").unwrap();
    tmp
}

#[test]
fn dockpack_layer_five_gib_sparse_file_pax_size() {
    let tree = sparse_tree();
    let mut tar = Command::new("tar")
        .args(["-tvf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tar_in = tar.stdin.take().unwrap();
    let mut dockpack = tool("dockpack")
        .arg("layer")
        .arg("-C")
        .arg(tree.path())
        .stdin(Stdio::piped())
        .stdout(tar_in)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = dockpack.stdin.take().unwrap();
    input.write_all(b"./huge\n./later\n").unwrap();
    drop(input);
    let packed = wait_rusage(dockpack);
    let listing = tar.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    eprintln!(
        "dockpack layer, 5 GiB sparse file: {:?}, peak RSS {} KiB, stderr {:?}; tar -tv: {:?} {text:?} {:?}",
        packed.status,
        packed.max_rss_kib,
        packed.stderr,
        listing.status,
        String::from_utf8_lossy(&listing.stderr)
    );
    assert!(packed.status.success(), "stderr {:?}", packed.stderr);
    assert!(listing.status.success(), "tar -t rejected the layer");
    let huge = text
        .lines()
        .find(|l| l.ends_with(" huge"))
        .unwrap_or_else(|| panic!("no huge member in {text:?}"));
    assert!(
        huge.split_whitespace().any(|f| f == FIVE_GIB.to_string()),
        "size is not {FIVE_GIB}: {huge:?}"
    );
    assert!(
        text.lines().any(|l| l.ends_with(" later")),
        "member after the big one lost"
    );
    assert!(packed.max_rss_kib < RSS_LIMIT_KIB);
}

#[test]
fn mkinitrd_refuses_five_gib_file() {
    let tree = sparse_tree();
    let mut cmd = tool("mkinitrd");
    cmd.arg("-C").arg(tree.path());
    let mut out_bytes = 0;
    let mut trailer = false;
    let out = run_streaming(
        cmd,
        |w| w.write_all(b".\n./huge\n./later\n"),
        |r| {
            // Bounded: the archive before the refusal is headers only.
            let mut buf = Vec::new();
            r.take(1 << 20).read_to_end(&mut buf).unwrap();
            out_bytes = buf.len();
            trailer = buf.windows(10).any(|w| w == b"TRAILER!!!");
        },
    );
    eprintln!(
        "mkinitrd, 5 GiB file: {:?}, {out_bytes} bytes out, peak RSS {} KiB, stderr {:?}",
        out.status, out.max_rss_kib, out.stderr
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(
        out.stderr.contains("huge"),
        "names the file: {:?}",
        out.stderr
    );
    assert!(!trailer, "an archive with a trailer was written");
    assert!(out_bytes < 1 << 20, "mkinitrd wrote data of the big file");
}

const DIRS: usize = 100;
const PER_DIR: usize = 1000;

/// 100 directories of 1000 empty files; returns the sorted names.
fn hundred_k_tree(dir: &std::path::Path) -> Vec<u8> {
    let mut names = b".\n".to_vec();
    for d in 0..DIRS {
        let sub = dir.join(format!("d{d:03}"));
        fs::create_dir(&sub).unwrap();
        names.extend_from_slice(format!("./d{d:03}\n").as_bytes());
        for f in 0..PER_DIR {
            fs::File::create(sub.join(format!("f{f:04}"))).unwrap();
            names.extend_from_slice(format!("./d{d:03}/f{f:04}\n").as_bytes());
        }
    }
    names
}

fn pack_and_count(
    packer: Command,
    names: Vec<u8>,
    lister: &[&str],
) -> (reliability_tests::Outcome, u64) {
    let mut packer = packer;
    let mut lister_child = Command::new(lister[0])
        .args(&lister[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lister_in = lister_child.stdin.take().unwrap();
    let mut child = packer
        .stdin(Stdio::piped())
        .stdout(lister_in)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The Command holds its copy of the lister's stdin until dropped:
    // `tar -t` reads to end of file, so that copy must go.
    drop(packer);
    let mut input = child.stdin.take().unwrap();
    let t = std::thread::spawn(move || input.write_all(&names));
    let mut lister_out = lister_child.stdout.take().unwrap();
    let (_, lines) = count(&mut lister_out);
    let out = wait_rusage(child);
    t.join().unwrap().unwrap();
    let st = lister_child.wait().unwrap();
    assert!(st.success(), "{lister:?} rejected the archive");
    (out, lines)
}

#[test]
fn hundred_thousand_files_through_both_packers() {
    let tmp = tempfile::tempdir().unwrap();
    let names = hundred_k_tree(tmp.path());
    let entries = (1 + DIRS + DIRS * PER_DIR) as u64;

    let mut cmd = tool("mkinitrd");
    cmd.arg("-C").arg(tmp.path()).args(["--owner", "0:0"]);
    let (out, listed) = pack_and_count(cmd, names.clone(), &["cpio", "-it", "--quiet"]);
    eprintln!(
        "mkinitrd, {entries} entries: {:?}, peak RSS {} KiB, cpio -t lists {listed}",
        out.status, out.max_rss_kib
    );
    assert!(out.status.success(), "stderr {:?}", out.stderr);
    assert_eq!(listed, entries);
    assert!(out.max_rss_kib < RSS_LIMIT_KIB);

    let mut cmd = tool("dockpack");
    cmd.arg("layer")
        .arg("-C")
        .arg(tmp.path())
        .args(["--owner", "0:0"]);
    let (out, listed) = pack_and_count(cmd, names, &["tar", "-tf", "-"]);
    eprintln!(
        "dockpack layer, {entries} entries: {:?}, peak RSS {} KiB, tar -t lists {listed}",
        out.status, out.max_rss_kib
    );
    assert!(out.status.success(), "stderr {:?}", out.stderr);
    // A layer has no member for the root `.` itself.
    assert_eq!(listed, entries - 1);
    assert!(out.max_rss_kib < RSS_LIMIT_KIB);
}
