//! The skip record: `skip` says `skipped: WHY` and leaves `PACKAGE TEST:
//! WHY` where scripts/test.sh looks for it (here a scratch directory, so
//! this test adds nothing to the real summary).

#[test]
fn a_skip_leaves_a_record_naming_the_test() {
    let dir = std::env::temp_dir().join(format!("testkit-skips-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The only test in this executable: no other thread reads the variable.
    std::env::set_var("TESTKIT_SKIPS", &dir);
    testkit::skip("no widget here\n(apt-get install widget)");
    let mut text = String::new();
    for entry in std::fs::read_dir(&dir).expect("the skip made its directory") {
        text.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("read"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        text,
        "testkit a_skip_leaves_a_record_naming_the_test: no widget here (apt-get install widget)\n"
    );
}
