//! The runners' one rule for CMD: everything after DIR that is not one
//! of chrootrun's options is CMD, and a `--` before it is optional (as
//! kvmrun takes it: `kvmrun/tests/usage.rs`); `--timeout` is typed.

mod common;

use common::{each_caller, s, stderr, stdout};

#[test]
fn cmd_with_and_without_double_dash() {
    if !std::path::Path::new("/bin/busybox").exists() {
        testkit::skip("no /bin/busybox (apt-get install busybox-static)");
        return;
    }
    each_caller(|f| {
        let t = f.busybox("t");
        for args in [
            vec![s(&t), "/bin/echo", "-n", "a", "--", "b"],
            vec![s(&t), "--", "/bin/echo", "-n", "a", "--", "b"],
            vec!["--timeout", "30", s(&t), "/bin/echo", "-n", "a", "--", "b"],
            vec![
                s(&t),
                "--timeout",
                "30",
                "--",
                "/bin/echo",
                "-n",
                "a",
                "--",
                "b",
            ],
        ] {
            let o = f.run(&args);
            assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
            assert_eq!(stdout(&o), "a -- b", "{args:?}");
        }
    });
}

#[test]
fn a_bad_timeout_is_a_usage_error_naming_it() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chrootrun"))
        .args(["--timeout", "5s", "/nonexistent"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.starts_with("chrootrun: --timeout wants a number of seconds, not \"5s\"")
            && err.lines().count() == 1,
        "{err}"
    );
}
