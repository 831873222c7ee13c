#!/bin/sh
# Benchmark fileids and layerdiff against their peers, side by side, and
# print the ratios they are held to:
#   fileids  >= 3x a single-threaded sha256-per-file pass, and within 1.3x
#            of the machine's limit: bytes / (cores x single-core SHA-256
#            speed as `openssl speed -evp sha256` reports it);
#   layerdiff on two 1M-line lists at least as fast as `comm -13`.
# Usage: scripts/bench/fileids.sh [TREE]   (default $BENCH_TREE or target/bench-tree, what .ci/run makes;
# make one with: debootstrap --variant=minbase --include=busybox bookworm DIR)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
# The tree .ci/run makes, in this checkout.
default_tree=$(cd "$(dirname "$0")/../.." && pwd)/target/bench-tree
tree=${1:-${BENCH_TREE:-$default_tree}}
[ -d "$tree" ] || { echo "fileids.sh: $tree: no such tree (debootstrap --variant=minbase --include=busybox bookworm DIR)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "fileids.sh: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$top/target}
cargo build --release --quiet --manifest-path "$top/Cargo.toml" -p fileids -p layerdiff
bin=$target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# hyperfine's mean of one command, in seconds.
mean() { hyperfine --style none --warmup 1 --runs "${RUNS:-5}" --export-csv "$work/h.csv" "$1" >/dev/null 2>&1 &&
	awk -F, 'NR==2 {print $2}' "$work/h.csv"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

(cd "$tree" && find . | LC_ALL=C sort) >"$work/names"
entries=$(wc -l <"$work/names")
bytes=$(cd "$tree" && find . -type f -printf '%s\n' | awk '{s += $1} END {print s}')
cores=$(nproc)
# openssl's last column is the 16 KiB block speed, in kB/s ("123456.78k").
# One second of it swings as much as fileids does on a shared machine, so
# the limit takes the fastest of three, before, between and after the
# fileids runs.
sha_speed() { openssl speed -evp sha256 -seconds 1 2>/dev/null | awk '/^sha256/ {v = $NF} END {sub("k", "", v); print v}'; }
s1=$(sha_speed)
t_fileids=$(mean "cd '$tree' && '$bin/fileids' <'$work/names' >/dev/null")
s2=$(sha_speed)
t_j1=$(mean "cd '$tree' && '$bin/fileids' -j 1 <'$work/names' >/dev/null")
s3=$(sha_speed)
sha_kbps=$(printf '%s\n' "$s1" "$s2" "$s3" | sort -g | tail -n 1)
limit=$(awk -v b="$bytes" -v c="$cores" -v k="$sha_kbps" 'BEGIN {printf "%.4f", b / (c * k * 1000)}')

echo "tree: $tree ($entries entries, $bytes bytes of regular files), $cores cores, openssl sha256 ${sha_kbps} kB/s/core (fastest of $s1, $s2, $s3)"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | head -n 1)"
t_sum=$(mean "cd '$tree' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum >/dev/null")
t_py=""
if command -v python3 >/dev/null; then
	t_py=$(mean "cd '$tree' && python3 '$top/fileids/tests/fixtures/seed_fileids.py' <'$work/names' >/dev/null")
fi
printf '%-46s %8ss\n' "fileids (all cores)" "$t_fileids" \
	"fileids -j 1" "$t_j1" \
	"find -type f | sort | xargs sha256sum" "$t_sum"
[ -z "$t_py" ] || printf '%-46s %8ss\n' "seed fileids.py (Python 3)" "$t_py"
printf '%-46s %8ss\n' "machine limit (bytes / cores x openssl speed)" "$limit"
echo "ratio sha256sum-per-file / fileids:  $(ratio "$t_sum" "$t_fileids")x  (target >= 3)"
echo "ratio fileids -j1 / fileids:         $(ratio "$t_j1" "$t_fileids")x"
[ -z "$t_py" ] || echo "ratio seed fileids.py / fileids:     $(ratio "$t_py" "$t_fileids")x"
echo "ratio fileids / machine limit:       $(ratio "$t_fileids" "$limit")x  (target <= 1.3)"

# layerdiff: two sorted 1M-line lists, 5% deleted, 5% added, 10% changed.
awk 'BEGIN {
	for (i = 0; i < 1000000; i++) {
		d = sprintf("./d%04d/f%07d", i % 1000, i)
		h = sprintf("%064x", i)
		if (i % 20 != 0) print d " 0100644-0-0-" h > "/dev/stdout"
		if (i % 20 != 1) {
			if (i % 10 == 2) h = sprintf("%064x", i + 7)
			print d " 0100644-0-0-" h > "/dev/stderr"
		}
	}
}' >"$work/base.u" 2>"$work/new.u"
LC_ALL=C sort "$work/base.u" >"$work/base.list"
LC_ALL=C sort "$work/new.u" >"$work/new.list"
t_ld=$(mean "'$bin/layerdiff' '$work/base.list' '$work/new.list' >/dev/null")
t_comm=$(mean "LC_ALL=C comm -13 '$work/base.list' '$work/new.list' >/dev/null")
"$bin/layerdiff" "$work/base.list" "$work/new.list" >"$work/ld.out"
LC_ALL=C comm -13 "$work/base.list" "$work/new.list" >"$work/comm.out"
cmp -s "$work/ld.out" "$work/comm.out" || { echo "layerdiff and comm -13 disagree" >&2; exit 1; }
printf '%-46s %8ss\n' "layerdiff, 2 x 1M lines" "$t_ld" "LC_ALL=C comm -13, same lists" "$t_comm"
echo "ratio comm -13 / layerdiff:          $(ratio "$t_comm" "$t_ld")x  (target >= 1)"
