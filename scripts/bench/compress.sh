#!/bin/sh
# Benchmark: compressed initrds, `mkinitrd --compress` against the CLIs
# compressing the same archive, side by side in one run:
#   --compress gzip   vs  mkinitrd | gzip -6   and  mkinitrd | pigz -6
#   --compress zstd   vs  mkinitrd | zstd -3 -T0
#   --compress lz4    vs  mkinitrd | lz4 -l
# (the image half, `dockpack image --compress`, is compress-image.sh).
#
#   scripts/bench/compress.sh [TREE]      (or BENCH_TREE=TREE; RUNS=N rounds, default 5)
#
# TREE defaults to target/bench-tree (what .ci/run makes) and is only read. Make one with
#   debootstrap --variant=minbase --include=busybox bookworm DIR
# Every command reads the same sorted name list and writes into a pipe.
# Each output is made once to measure its size and check that it decodes
# to the plain archive; then every command is timed, in alternated runs
# (see below). Prints the CPU model, the load average, and for each pair
# the ratios ours/peer of wall time, CPU time and size (target: wall
# below gzip -6 and not above pigz -6 or zstd -T0, at a similar size).
set -eu

# The tree .ci/run makes, in this checkout.
default_tree=$(cd "$(dirname "$0")/../.." && pwd)/target/bench-tree
tree=${1:-${BENCH_TREE:-$default_tree}}
[ -d "$tree" ] || { echo "compress.sh: no tree at $tree (see the header for how to make one)" >&2; exit 1; }
for prog in gzip pigz zstd lz4 python3; do
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

# Timing: rounds in which every command runs once, in an order rotated
# from round to round (the machine is shared: load that comes and goes
# hits every command alike rather than whichever ran in that minute); the
# first round is a warm-up. Wall time from a monotonic clock, CPU time as
# user + system of the finished children (getrusage RUSAGE_CHILDREN);
# medians.
python3 - "$work" "$runs" <<'PY'
import os, resource, statistics, subprocess, sys, time
work, runs = sys.argv[1], int(sys.argv[2])
cmds = [l.rstrip('\n').split('@') for l in open(work + '/cmds')]
names = [c[1] for c in cmds]
sizes = {n: int(open('%s/size.%d' % (work, i + 1)).read()) for i, n in enumerate(names)}
wall = {n: [] for n in names}
cpu = {n: [] for n in names}
for rnd in range(runs + 1):
    order = cmds[rnd % len(cmds):] + cmds[:rnd % len(cmds)]
    for group, name, cmd, _ in order:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        subprocess.run(['sh', '-c', cmd + ' | cat > /dev/null'], check=True)
        t1 = time.monotonic()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if rnd > 0:
            wall[name].append(t1 - t0)
            cpu[name].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    print('round %d of %d done' % (rnd, runs), file=sys.stderr)
print('\nmedians of %d alternated runs:' % runs)
print('%-30s %8s %8s %12s' % ('', 'wall s', 'cpu s', 'bytes'))
med = {n: (statistics.median(wall[n]), statistics.median(cpu[n]), sizes[n]) for n in names}
for group in ('gzip', 'zstd', 'lz4'):
    members = [c[1] for c in cmds if c[0] == group]
    for n in members:
        print('%-30s %8.3f %8.3f %12d' % (n, *med[n]))
    ours = med[members[0]]
    for n in members[1:]:
        peer = med[n]
        print('  ours/%s: wall %.2f, cpu %.2f, size %.3f' % (
            n.replace('mkinitrd | ', ''), ours[0] / peer[0], ours[1] / peer[1], ours[2] / peer[2]))
PY
# How busy the shared machine was: the load average over the run.
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
