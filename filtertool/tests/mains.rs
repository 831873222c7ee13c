//! Every tool's `main.rs` is the same two lines: parse into the tool's
//! `Cli`, run its body under [`filtertool::main`]. Anything more (an
//! error mapped by hand, a second parse, a different exit code) would
//! make one tool behave unlike the others.

use std::path::Path;

#[test]
fn every_main_is_the_two_line_main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (krate, run) in [
        ("fileids", "fileids::run"),
        ("layerdiff", "layerdiff::run"),
        ("elfdeps", "elfdeps::cli::run"),
        ("mkinitrd", "mkinitrd::run"),
        ("kvmrun", "kvmrun::run"),
        ("chrootrun", "chrootrun::run"),
        ("dockpack", "dockpack::cli::run"),
    ] {
        let path = root.join(krate).join("src/main.rs");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let want = format!(
            "use std::process::ExitCode;\n\nfn main() -> ExitCode {{\n    filtertool::main({krate}::PROGRAM, {run})\n}}\n"
        );
        assert_eq!(text, want, "{krate}/src/main.rs");
    }
}
