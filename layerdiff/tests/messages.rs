//! layerdiff names its input lists through the one quoting rule: a list
//! whose file name holds a newline or an escape cannot forge a message
//! line or reach the terminal raw.

use std::fs;
use std::time::Duration;

use assert_cmd::Command;

#[test]
fn a_list_name_with_control_bytes_stays_on_one_line() {
    let t = tempfile::tempdir().unwrap();
    let good = t.path().join("good.list");
    fs::write(&good, ". 0040755-0-0-0\n").unwrap();
    let evil = t.path().join("x\nlayerdiff: ok\x1b[2J.list");
    fs::write(&evil, "./b 0040755-0-0-0\n./a 0040755-0-0-0\n").unwrap();
    let missing = t.path().join("gone\r.list");
    for (base, want) in [
        (
            &evil,
            r#"x\nlayerdiff: ok\x1b[2J.list": line 2: not sorted"#,
        ),
        (
            &missing,
            r#"gone\r.list": cannot open: No such file or directory"#,
        ),
    ] {
        let out = Command::cargo_bin("layerdiff")
            .unwrap()
            .arg(base)
            .arg(&good)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err:?}");
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
        assert!(err.contains(want), "{err:?}");
        assert!(!err.contains("os error"), "{err:?}");
    }
}
