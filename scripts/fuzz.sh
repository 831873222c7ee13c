#!/bin/sh
# Runs every cargo-fuzz target in fuzz/ for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, all targets)
#
# cargo-fuzz needs nightly rustc features (-Z sanitizer flags); on the
# stable toolchain RUSTC_BOOTSTRAP=1 unlocks them. Install the driver once
# with `cargo install cargo-fuzz --locked`.
#
# Nothing is written into the source tree outside target/ (CI runs this
# in a fresh clone): cargo-fuzz writes Cargo.lock, artifacts/ and corpus/
# into the fuzz project it runs, so it runs a copy of fuzz/ made under
# $CARGO_TARGET_DIR/fuzz/project (default target/fuzz/project), whose
# path dependency points back at reliability/ and whose Cargo.lock starts
# from the workspace's, so the parsers build with the versions the tools
# use. libFuzzer writes new inputs to the first corpus directory only, so
# the seed corpus in fuzz/corpus/TARGET is read, never changed; new inputs
# go to $CARGO_TARGET_DIR/fuzz/fuzz-corpus/TARGET (kept between runs).
# A crash stops that target, is saved under
# $CARGO_TARGET_DIR/fuzz/artifacts/TARGET/, and the script goes on with
# the next target and exits 1 at the end: copy the input into
# fuzz/corpus/TARGET/ so reliability/tests/mutate.rs replays it on every
# test run.
# SANITIZER=address (the cargo-fuzz default) is slower to build; the
# default here is none: the targets look for panics, and the code under
# test forbids unsafe memory access outside libc calls.
set -eu
secs=${1:-30}
[ $# -gt 0 ] && shift
case $secs in
'' | *[!0-9]*)
	echo "fuzz.sh: SECONDS_PER_TARGET must be a number, not '$secs'" >&2
	exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd -P)
out="${CARGO_TARGET_DIR:-$root/target}/fuzz"
export CARGO_TARGET_DIR="$out"
export RUSTC_BOOTSTRAP=1
sanitizer=${SANITIZER:-none}
command -v cargo-fuzz >/dev/null || {
	echo "fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
	exit 2
}

# The copy of the fuzz project: manifest (path dependency made absolute)
# and targets, refreshed on every run; its Cargo.lock is kept once made.
project=$out/project
mkdir -p "$project/fuzz_targets"
sed "s|path = \"\\.\\./reliability\"|path = \"$root/reliability\"|" \
	"$root/fuzz/Cargo.toml" >"$project/Cargo.toml.new"
grep -q "path = \"$root/reliability\"" "$project/Cargo.toml.new" || {
	echo "fuzz.sh: fuzz/Cargo.toml no longer names ../reliability; update this script" >&2
	exit 2
}
mv "$project/Cargo.toml.new" "$project/Cargo.toml"
rm -f "$project"/fuzz_targets/*.rs
cp "$root"/fuzz/fuzz_targets/*.rs "$project/fuzz_targets/"
[ -e "$project/Cargo.lock" ] || cp "$root/Cargo.lock" "$project/Cargo.lock"

targets=${*:-$(cargo fuzz list --fuzz-dir "$project")}
start_all=$(date +%s)
cargo fuzz build --fuzz-dir "$project" -s "$sanitizer" >&2
echo "fuzz.sh: built in $(($(date +%s) - start_all)) s" >&2
status=0
for t in $targets; do
	work=$out/fuzz-corpus/$t
	artifacts=$out/artifacts/$t
	mkdir -p "$work" "$artifacts"
	start=$(date +%s)
	# -rss_limit_mb bounds memory, -max_len bounds input size; the run is
	# bounded by -max_total_time. Output is libFuzzer's stats on stderr.
	if cargo fuzz run --fuzz-dir "$project" -s "$sanitizer" "$t" \
		"$work" "$root/fuzz/corpus/$t" -- \
		-max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
		-artifact_prefix="$artifacts/" -print_final_stats=1 2>"$work.log"; then
		result=ok
	else
		result="CRASH (input in $artifacts/)"
		status=1
		tail -n 30 "$work.log" >&2
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log" | tail -n1)
	echo "$t: $result, ${runs:-?} inputs in $(($(date +%s) - start)) s, corpus $(ls "$work" | wc -l) (log $work.log)"
done
echo "fuzz.sh: $(($(date +%s) - start_all)) s in all"
exit $status
