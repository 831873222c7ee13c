//! What the workspace's tests share, so each test file does not carry its
//! own copy: the built binaries (`bins`), running a program with stdin
//! and with its stdout closed early (`run`), "are we root" and an ordinary
//! user to run as (`user`), the mutation loop of the robustness tests
//! (`mutation`), a local registry and cleanup of services and podman
//! images (`engines`), and the visible skip (`skip`): a test that cannot run
//! says `skipped: WHY` on stderr and leaves a record under
//! `target/test-skips/` that `scripts/test.sh` sums up at the end, since
//! cargo shows a skipped test as `ok` and hides its stderr.
//!
//! Dev-only (`publish = false`): nothing here is part of a tool.

pub mod bins;
pub mod engines;
pub mod mutation;
pub mod run;
pub mod skip;
pub mod user;

pub use bins::{bin, have, path_with, profile_dir, target_dir, tool, workspace_root};
pub use mutation::{mutate_bytes, mutation_loop, Rng};
pub use run::{
    assert_quiet_when_stdout_closed, count, run, run_bounded, run_stdout_closed, run_streaming,
    sha256_hex, wait_rusage, Bounded, Outcome,
};
pub use skip::skip;
pub use user::{is_root, ordinary_user, runs_as_nobody, User};
