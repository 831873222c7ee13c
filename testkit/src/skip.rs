//! The visible skip. cargo's harness prints a test that returns early as
//! `ok` and hides what it wrote to stderr, so a test that cannot run here
//! calls `skip(why)`: it prints `skipped: WHY` on stderr (shown with
//! `--nocapture`) and appends `PACKAGE TEST: WHY` to a file of its own
//! under `target/test-skips/` (or `$TESTKIT_SKIPS`), which
//! `scripts/test.sh` prints at the end.

use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io::Write;

/// Says why the calling test does not run, on stderr and in the record;
/// the test then returns.
pub fn skip(why: impl Display) {
    let why = why.to_string();
    eprintln!("skipped: {why}");
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    // cargo sets CARGO_PKG_NAME for the test executables it runs.
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "?".into());
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into());
    let dir = std::env::var_os("TESTKIT_SKIPS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join("test-skips"));
    // The record helps the summary; failing to write it must not fail the
    // test, but it is said.
    let written = fs::create_dir_all(&dir).and_then(|()| {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{exe}.txt")))?;
        // One write per line: appends of a short line from parallel
        // tests do not interleave (O_APPEND).
        f.write_all(format!("{package} {test}: {}\n", why.replace('\n', " ")).as_bytes())
    });
    if let Err(e) = written {
        eprintln!("(could not record the skip in {}: {e})", dir.display());
    }
}
