//! `minredo`: the small redo driver the pipeline tests run the cookbook
//! with (see `pipeline_tests::redo`). Installed under the names `redo`,
//! `redo-ifchange` and `redo-ifcreate` for the `.do` scripts it runs.

fn main() -> std::process::ExitCode {
    pipeline_tests::redo::main()
}
