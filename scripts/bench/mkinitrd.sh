#!/bin/sh
# Benchmark: mkinitrd against GNU cpio writing the same newc archive.
#
#   scripts/bench/mkinitrd.sh [TREE]      (or BENCH_TREE=TREE)
#
# TREE defaults to target/bench-tree (what .ci/run makes) and is only read. Make one with
#   debootstrap --variant=minbase --include=busybox bookworm DIR
# Both sides read the same NUL-terminated name list (`find . -print0 |
# LC_ALL=C sort -z`, made once: mkinitrd wants sorted input, as layerdiff
# does) and write into a pipe, as `find . -print0 | cpio -o -H newc -0`
# does in the seed; the gzip pair compares `mkinitrd --gzip` with `cpio | gzip`.
# Prints mean times and the ratios (target: mkinitrd at least 1.5x faster).
set -eu

# The tree .ci/run makes, in this checkout.
default_tree=$(cd "$(dirname "$0")/../.." && pwd)/target/bench-tree
tree=${1:-${BENCH_TREE:-$default_tree}}
[ -d "$tree" ] || { echo "mkinitrd.sh: no tree at $tree (see the header for how to make one)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "mkinitrd.sh: hyperfine is not installed" >&2; exit 1; }
command -v cpio >/dev/null || { echo "mkinitrd.sh: GNU cpio is not installed" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p mkinitrd)
bin=$target/release/mkinitrd

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$(cd "$tree" && pwd)
(cd "$tree" && find . -print0 | LC_ALL=C sort -z) > "$work/names"
echo "tree: $tree, $(tr -cd '\0' < "$work/names" | wc -c) entries"

# Sanity: both archives unpack-list the same names and are about the same size.
(cd "$tree" && "$bin" -0 < "$work/names") > "$work/ours.cpio"
(cd "$tree" && cpio -o -H newc -0 --quiet < "$work/names") > "$work/theirs.cpio"
echo "archive bytes: mkinitrd $(wc -c < "$work/ours.cpio"), cpio $(wc -c < "$work/theirs.cpio")"
cpio -it --quiet < "$work/ours.cpio" | sed 's|^\./||' | LC_ALL=C sort > "$work/ours.t"
cpio -it --quiet < "$work/theirs.cpio" | sed 's|^\./||' | LC_ALL=C sort > "$work/theirs.t"
cmp -s "$work/ours.t" "$work/theirs.t" || { echo "mkinitrd.sh: the two archives hold different names" >&2; exit 1; }
rm -f "$work/ours.cpio" "$work/theirs.cpio"

hyperfine --warmup 2 --min-runs 10 --style basic --export-csv "$work/plain.csv" \
  -n mkinitrd "cd '$tree' && '$bin' -0 < '$work/names' | cat > /dev/null" \
  -n cpio "cd '$tree' && cpio -o -H newc -0 --quiet < '$work/names' | cat > /dev/null"
hyperfine --warmup 0 --runs 3 --style basic --export-csv "$work/gzip.csv" \
  -n 'mkinitrd --gzip' "cd '$tree' && '$bin' -0 --gzip < '$work/names' | cat > /dev/null" \
  -n 'cpio | gzip' "cd '$tree' && cpio -o -H newc -0 --quiet < '$work/names' | gzip -c | cat > /dev/null"

# CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
ratio() {
  awk -F, -v what="$2" 'NR == 2 { ours = $2 } NR == 3 { theirs = $2 }
    END { printf "%s: mkinitrd %.3f s, peer %.3f s, ratio %.2fx faster\n", what, ours, theirs, theirs / ours }' "$1"
}
ratio "$work/plain.csv" "newc (mkinitrd vs find -print0 | cpio -o -H newc -0)"
ratio "$work/gzip.csv" "gzip (mkinitrd --gzip vs cpio -o -H newc | gzip)"
