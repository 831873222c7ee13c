//! Concurrent runs of one pipeline in one directory (each tool writes
//! only where it is told to, so redo -j and make -j are safe): eight copies of
//! `fileids | dockpack layer`, `mkinitrd`, and `dockpack image --iidfile
//! --oci-dir` run at once with the same working directory. Every copy must
//! give the same bytes, and the directory must end up holding exactly the
//! files the commands named: no shared temporary file, no stray output.

use reliability_tests::tool;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

const COPIES: usize = 8;

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("bin/prog"), vec![b'p'; 200_000]).unwrap();
    fs::write(dir.join("hello"), b"hello\n").unwrap();
    std::os::unix::fs::symlink("bin/prog", dir.join("link")).unwrap();
}

fn sh(dir: &Path, script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-ec", script]).current_dir(dir);
    c
}

#[test]
fn same_pipeline_eight_times_at_once_in_one_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    tree(&tmp.path().join("fs"));
    let fileids = tool("fileids").get_program().to_owned();
    let dockpack = tool("dockpack").get_program().to_owned();
    let mkinitrd = tool("mkinitrd").get_program().to_owned();
    let script = |i: usize| {
        format!(
            "printf '.\\n./bin\\n./bin/prog\\n./hello\\n./link\\n' | {f} -C ../fs --owner 0:0 > l.{i}.list\n\
             {d} layer -C ../fs < l.{i}.list > l.{i}.layer\n\
             {m} -C ../fs < l.{i}.list > l.{i}.initrd\n\
             {d} image --tag c:{i} --arch amd64 --iidfile l.{i}.iid l.{i}.layer > l.{i}.image\n\
             {d} image --tag c:{i} --arch amd64 --oci-dir l.{i}.oci l.{i}.layer\n",
            f = fileids.display(),
            d = dockpack.display(),
            m = mkinitrd.display(),
        )
    };
    let children: Vec<_> = (0..COPIES)
        .map(|i| sh(&work, &script(i)).spawn().unwrap())
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "copy {i} failed");
    }
    let mut expected = BTreeSet::new();
    for i in 0..COPIES {
        for ext in ["list", "layer", "initrd", "iid", "image", "oci"] {
            expected.insert(format!("l.{i}.{ext}"));
        }
    }
    let found: BTreeSet<String> = fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(found, expected, "stray or missing files in the directory");
    for ext in ["list", "layer", "initrd"] {
        let first = fs::read(work.join(format!("l.0.{ext}"))).unwrap();
        assert!(!first.is_empty());
        for i in 1..COPIES {
            assert_eq!(
                fs::read(work.join(format!("l.{i}.{ext}"))).unwrap(),
                first,
                "copy {i} of .{ext} differs"
            );
        }
    }
    // The tag differs per copy, so images differ; each must be a whole layout.
    for i in 0..COPIES {
        let oci = work.join(format!("l.{i}.oci"));
        assert!(oci.join("index.json").is_file() && oci.join("oci-layout").is_file());
        let iid = fs::read_to_string(work.join(format!("l.{i}.iid"))).unwrap();
        assert!(
            iid.trim().starts_with("sha256:") && iid.trim().len() == 71,
            "{iid:?}"
        );
        let listed = Command::new("tar")
            .arg("-tf")
            .arg(work.join(format!("l.{i}.image")))
            .output()
            .unwrap();
        assert!(listed.status.success(), "image {i} is not a whole tar");
        assert!(String::from_utf8_lossy(&listed.stdout).contains("index.json"));
    }
    eprintln!(
        "{COPIES} concurrent pipelines: identical lists, layers and initrds; only the named files"
    );
}
