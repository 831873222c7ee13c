//! A skipped test is visible: `testkit::skip` leaves a record, and the
//! summary scripts/test.sh ends with (scripts/skips.sh) lists it with its
//! reason, sorted; with no record it says no test skipped. (One test in
//! this executable: it sets TESTKIT_SKIPS, which no other test reads.)

use std::process::Command;

use pipeline_tests::support;

#[test]
fn a_skip_shows_in_the_summary_with_its_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let records = dir.path().join("test-skips");
    let summary = || {
        let out = Command::new(support::workspace_root().join("scripts/skips.sh"))
            .arg(&records)
            .output()
            .unwrap_or_else(|e| panic!("skips.sh: {e}"));
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(summary(), "test.sh: no test skipped\n");
    std::env::set_var("TESTKIT_SKIPS", &records);
    testkit::skip("no frobnicator here (apt-get install frobnicator)");
    testkit::skip("and no widget");
    assert_eq!(
        summary(),
        "test.sh: skipped (2), and why:\n  \
         pipeline-tests a_skip_shows_in_the_summary_with_its_reason: and no widget\n  \
         pipeline-tests a_skip_shows_in_the_summary_with_its_reason: no frobnicator here (apt-get install frobnicator)\n"
    );
}
