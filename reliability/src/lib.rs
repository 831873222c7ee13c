//! Support code for the workspace-wide scale, fault and security tests:
//! the in-process parsers the fuzz targets and the mutation test drive
//! (`parsers`), and, re-exported from `testkit` so the tests here keep
//! their short paths, finding the tools' binaries, running a tool with
//! its stdout closed, measuring a child's peak RSS, and the generator of
//! the mutation tests.

pub mod parsers;

pub use testkit::{
    bin, count, is_root, run, run_stdout_closed, run_streaming, sha256_hex, skip, tool,
    wait_rusage, workspace_root, Outcome, Rng,
};
