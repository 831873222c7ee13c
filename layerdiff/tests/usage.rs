//! A list that cannot be read is reported with its one cause, once: the
//! README's `layerdiff small small.list` (a directory given for BASE)
//! once printed `Is a directory: Is a directory`.

use std::fs;
use std::time::Duration;

use assert_cmd::Command;

#[test]
fn a_directory_for_a_list_gives_one_cause_once() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("small");
    fs::create_dir(&dir).unwrap();
    let list = t.path().join("small.list");
    fs::write(&list, ". 0040755-0-0-0\n").unwrap();
    for args in [[&dir, &list], [&list, &dir]] {
        let out = Command::new(env!("CARGO_BIN_EXE_layerdiff"))
            .args(args)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(
            err.starts_with("layerdiff: \"")
                && err.contains("small\": cannot read: Is a directory"),
            "{err:?}"
        );
        assert_eq!(err.matches("Is a directory").count(), 1, "{err:?}");
    }
}
