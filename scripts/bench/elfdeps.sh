#!/bin/sh
# Benchmark: elfdeps over every file of /usr/bin against ldd on the same
# files (ldd runs the loader once per file; elfdeps reads headers only).
# Usage: scripts/bench/elfdeps.sh [DIR]   (default /usr/bin; any directory
# of binaries works, e.g. $BENCH_TREE/usr/bin of a tree made with
# `debootstrap --variant=minbase --include=busybox bookworm DIR`, though
# ldd there resolves against the host, so /usr/bin of the host is the
# like-for-like default). Target: elfdeps 10x faster than ldd.
set -eu
cd "$(dirname "$0")/../.."
DIR=${1:-/usr/bin}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p elfdeps
BIN=$CARGO_TARGET_DIR/release/elfdeps
LIST=$(mktemp)
JSON=$(mktemp)
trap 'rm -f "$LIST" "$JSON"' EXIT
find "$DIR" -maxdepth 1 -type f | sort > "$LIST"
echo "files: $(wc -l < "$LIST") in $DIR"
hyperfine --warmup 2 --min-runs 5 --export-json "$JSON" \
  -n ldd "xargs -d '\n' ldd < $LIST > /dev/null 2>&1 || true" \
  -n elfdeps "$BIN --allow-missing < $LIST > /dev/null 2>&1"
jq -r '.results as $r | "ratio: elfdeps is \(($r[0].mean / $r[1].mean) * 100 | floor / 100)x faster than ldd (mean \($r[0].mean*1000|floor) ms vs \($r[1].mean*1000|floor) ms; target 10x)"' "$JSON"
