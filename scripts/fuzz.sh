#!/bin/sh
# Runs every cargo-fuzz target in fuzz/ for a bounded time (issue 8).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, all targets)
#
# cargo-fuzz needs nightly rustc features (-Z sanitizer flags); on the
# stable toolchain RUSTC_BOOTSTRAP=1 unlocks them. Install the driver once
# with `cargo install cargo-fuzz`. New inputs libFuzzer finds go to
# $CARGO_TARGET_DIR/fuzz-corpus/TARGET (the seed corpus in fuzz/corpus/
# stays as committed); a crash stops the run, is saved under
# fuzz/artifacts/TARGET/, and the script exits non-zero: add the input to
# fuzz/corpus/TARGET/ so tests/mutate.rs replays it from then on.
# SANITIZER=address (the cargo-fuzz default) is slower to build; the
# default here is none: the targets look for panics, and the code under
# test forbids unsafe memory access outside libc calls.
set -eu
secs=${1:-30}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/fuzz"
export RUSTC_BOOTSTRAP=1
sanitizer=${SANITIZER:-none}
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 2; }
cd "$root/fuzz"
targets=${*:-$(cargo fuzz list)}
cargo fuzz build -s "$sanitizer" >&2
status=0
for t in $targets; do
    work="$CARGO_TARGET_DIR/fuzz-corpus/$t"
    mkdir -p "$work"
    start=$(date +%s)
    # -rss_limit_mb bounds memory, -max_len bounds input size; the run is
    # bounded by -max_total_time. Output is libFuzzer's stats on stderr.
    if cargo fuzz run -s "$sanitizer" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -print_final_stats=1 2>"$work.log"; then
        result=ok
    else
        result=CRASH
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log" | tail -n1)
    echo "$t: $result, ${runs:-?} inputs in $(( $(date +%s) - start )) s, corpus $(ls "$work" | wc -l) (log $work.log)"
done
exit $status
