#!/bin/sh
# Benchmark: compressed initrds, `mkinitrd --compress` against the CLIs
# compressing the same archive, side by side in one run:
#   --compress gzip   vs  mkinitrd | gzip -6   and  mkinitrd | pigz -6
#   --compress zstd   vs  mkinitrd | zstd -3 -T0
#   --compress lz4    vs  mkinitrd | lz4 -l
# (the image half, `dockpack image --compress`, is compress-image.sh).
#
#   scripts/bench/compress.sh [TREE]      (or BENCH_TREE=TREE; RUNS=N, default 5)
#
# TREE defaults to /work/deb and is only read. Make one with
#   debootstrap --variant=minbase --include=busybox bookworm DIR
# Every command reads the same sorted name list and writes into a pipe.
# hyperfine runs each group's commands in turn, warmed up, and reports
# wall time and CPU time (user + system, children included); each output
# is made once more to measure its size and check that it decodes to the
# plain archive. Prints the CPU model, the load average, and for each pair
# the ratios ours/peer of wall time, CPU time and size (target: wall
# below gzip -6 and not above pigz -6 or zstd -T0, at a similar size).
set -eu

tree=${1:-${BENCH_TREE:-/work/deb}}
[ -d "$tree" ] || { echo "compress.sh: no tree at $tree (see the header for how to make one)" >&2; exit 1; }
for prog in hyperfine gzip pigz zstd lz4 python3; do
	command -v "$prog" >/dev/null || { echo "compress.sh: $prog is not installed (apt-get install $prog)" >&2; exit 1; }
done
runs=${RUNS:-5}

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p mkinitrd)
bin=$target/release/mkinitrd

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$(cd "$tree" && pwd)
(cd "$tree" && find . -print0 | LC_ALL=C sort -z) > "$work/names"
echo "tree: $tree, $(tr -cd '\0' < "$work/names" | wc -c) entries"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort | uniq -c | sed 's/^ *//'), $(nproc) online"

mk="cd '$tree' && '$bin' -0 --owner 0:0"
# GROUP@NAME@COMMAND@DECODER for every command; the first of each group is ours.
cat > "$work/cmds" <<EOF
gzip@mkinitrd --compress gzip@$mk --compress gzip < '$work/names'@gzip -dc
gzip@mkinitrd | gzip -6@$mk < '$work/names' | gzip -6@gzip -dc
gzip@mkinitrd | pigz -6@$mk < '$work/names' | pigz -6@gzip -dc
zstd@mkinitrd --compress zstd@$mk --compress zstd < '$work/names'@zstd -dc
zstd@mkinitrd | zstd -3 -T0@$mk < '$work/names' | zstd -3 -T0 -q@zstd -dc
lz4@mkinitrd --compress lz4@$mk --compress lz4 < '$work/names'@lz4 -dc
lz4@mkinitrd | lz4 -l@$mk < '$work/names' | lz4 -l -q@lz4 -dc
EOF

# Sizes, and every output decodes to the same archive.
sh -c "$mk < '$work/names'" > "$work/plain"
echo "plain archive: $(wc -c < "$work/plain") bytes"
i=0
while IFS='@' read -r group name cmd decode; do
	i=$((i + 1))
	sh -c "$cmd" > "$work/out"
	wc -c < "$work/out" > "$work/size.$i"
	$decode < "$work/out" | cmp -s - "$work/plain" ||
		{ echo "compress.sh: $name does not decode to the archive" >&2; exit 1; }
done < "$work/cmds"
rm -f "$work/out" "$work/plain"

for group in gzip zstd lz4; do
	set --
	while IFS='@' read -r g name cmd decode; do
		[ "$g" = "$group" ] && set -- "$@" -n "$name" "$cmd | cat > /dev/null"
	done < "$work/cmds"
	hyperfine --warmup 1 --runs "$runs" --style basic --export-json "$work/$group.json" "$@"
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
names = [l.split('@')[1] for l in open(work + '/cmds')]
sizes = {n: int(open('%s/size.%d' % (work, i + 1)).read()) for i, n in enumerate(names)}
print('\n%-30s %8s %8s %12s' % ('', 'wall s', 'cpu s', 'bytes'))
rows = {}
for group in ('gzip', 'zstd', 'lz4'):
    res = json.load(open('%s/%s.json' % (work, group)))['results']
    for r in res:
        n = r['command']
        rows[n] = (r['mean'], r['user'] + r['system'], sizes[n])
        print('%-30s %8.3f %8.3f %12d' % (n, *rows[n]))
    ours = rows[res[0]['command']]
    for r in res[1:]:
        peer = rows[r['command']]
        print('  ours/%s: wall %.2f, cpu %.2f, size %.3f' % (
            r['command'].replace('mkinitrd | ', ''),
            ours[0] / peer[0], ours[1] / peer[1], ours[2] / peer[2]))
PY
# How busy the shared machine was: the load average over the run.
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
