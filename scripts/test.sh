#!/bin/sh
# Runs every test of the workspace: each tool's unit and integration tests,
# the cross-tool pipeline tests (pipeline-tests) and the reliability tests,
# after the style and lint checks, then a bounded run of every fuzz target.
# This is the README's test command; .ci/run calls it.
# It ends, pass or fail, with every test that skipped and why: cargo shows
# a skipped test as `ok`, so each one leaves a record (testkit::skip) under
# target/test-skips/, emptied here first.
set -eu
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
skips=$target/test-skips
rm -rf "$skips"
summary() {
	status=$?
	echo >&2
	scripts/skips.sh "$skips"
	[ "$status" = 0 ] || echo "test.sh: FAILED (exit $status)" >&2
	exit "$status"
}
trap summary EXIT
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The pipeline tests run the tools' binaries: build them all first.
cargo build --workspace --bins
# The parallel cookbook builds include the Debian container here (one
# more debootstrap, about 70 s; a plain `cargo test` leaves it out).
PIPELINE_TESTS_PARALLEL_DEBIAN=1 cargo test --workspace
# kvmrun's VM tests again, on the cookbook's kernel (scripts/kernel.do:
# about 6 minutes to build on two cores, once; make skips it when built).
if [ -r /usr/src/linux-source-6.1.tar.xz ]; then
	started=$(date +%s)
	timeout 2400 nice make -C scripts --no-print-directory kernel
	echo "test.sh: the cookbook kernel: $(($(date +%s) - started)) s (0 when already built)" >&2
	KVMRUN_KERNEL=$PWD/scripts/kernel timeout 1200 cargo test -p kvmrun --test vm --test boot_cache --test report_ends_vm --test compressed
else
	echo "test.sh: no /usr/src/linux-source-6.1.tar.xz (apt-get install linux-source-6.1): kvmrun's VM tests not run on the cookbook kernel" >&2
	mkdir -p "$skips"
	echo "kvmrun VM tests on the cookbook kernel: no linux-source-6.1" >>"$skips/kernel.txt"
fi
# Every fuzz target for 20 s: about 3 min here, build included.
# cargo-fuzz is a cargo plugin that .ci/run installs; without it, say so.
if command -v cargo-fuzz >/dev/null 2>&1; then
	scripts/fuzz.sh 20
else
	echo "test.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked): skipping scripts/fuzz.sh" >&2
	mkdir -p "$skips"
	echo "scripts/fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >>"$skips/fuzz.txt"
fi
