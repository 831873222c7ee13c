#!/bin/sh
# Runs every test of the workspace: each tool's unit and integration tests
# and the cross-tool pipeline tests (pipeline-tests), after the style and
# lint checks. This is the README's test command; .ci/run calls it.
set -eu
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The pipeline tests run the tools' binaries: build them all first.
cargo build --workspace --bins
cargo test --workspace
