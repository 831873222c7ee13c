#!/bin/sh
# Benchmark: `dockpack image --compress` against the CLIs compressing the
# same layer, side by side in one run:
#   dockpack image --compress gzip   vs  gzip -6 -n  and  pigz -6 -n
#   dockpack image --compress zstd   vs  zstd -3 -T0
# (the initrd half, `mkinitrd --compress`, is compress.sh). The layer is
# the tree's: `find . | sort | fileids | dockpack layer`, made once.
#
#   scripts/bench/compress-image.sh [TREE]   (or BENCH_TREE=TREE; RUNS=N, default 5)
#
# TREE defaults to target/bench-tree (what .ci/run makes) and is only read. Make one with
#   debootstrap --variant=minbase --include=busybox bookworm DIR
# Every command reads the layer file and writes a new file in the same
# scratch directory. dockpack does more than the CLIs: it checks the layer
# as a tar, hashes it (the diff_id) and the compressed bytes (the blob
# digest), writes them to an unnamed file in $TMPDIR and copies that into
# the image tar; `dockpack image` without --compress is timed too, to show
# what that costs alone, and each multi-threaded CLI also followed by
# `openssl dgst -sha256` of the layer and its output (SHA-NI where the
# CPU has it): the two digests any image builder must compute. Each dockpack blob is checked to decode to the
# layer. Prints the CPU model, the load average, and per pair the ratios
# ours/peer of wall time, CPU time (user + system) and size (target: wall
# below gzip -6 and not above pigz -6 or zstd -T0, at a similar size).
set -eu

# The tree .ci/run makes, in this checkout.
default_tree=$(cd "$(dirname "$0")/../.." && pwd)/target/bench-tree
tree=${1:-${BENCH_TREE:-$default_tree}}
[ -d "$tree" ] || { echo "compress-image.sh: no tree at $tree (see the header for how to make one)" >&2; exit 1; }
for prog in hyperfine gzip pigz zstd openssl python3; do
	command -v "$prog" >/dev/null || { echo "compress-image.sh: $prog is not installed (apt-get install $prog)" >&2; exit 1; }
done
runs=${RUNS:-5}

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p dockpack -p fileids)
dp=$target/release/dockpack
fileids=$target/release/fileids

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=0
tree=$(cd "$tree" && pwd)
(cd "$tree" && find . | LC_ALL=C sort | "$fileids") > "$work/list"
"$dp" layer -C "$tree" < "$work/list" > "$work/layer.tar"
echo "tree: $tree, $(wc -l < "$work/list") entries; layer: $(wc -c < "$work/layer.tar") bytes"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort | uniq -c | sed 's/^ *//'), $(nproc) online"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

L=$work/layer.tar
O=$work/out
# GROUP@NAME@COMMAND for every command; the first of each group is ours.
cat > "$work/cmds" <<EOF
gzip@dockpack image --compress gzip@'$dp' image --compress gzip '$L' > '$O'
gzip@gzip -6 -n@gzip -6 -n < '$L' > '$O'
gzip@pigz -6 -n@pigz -6 -n < '$L' > '$O'
gzip@pigz -6 -n + sha256s@pigz -6 -n < '$L' > '$O' && openssl dgst -sha256 '$L' '$O' > /dev/null
zstd@dockpack image --compress zstd@'$dp' image --compress zstd '$L' > '$O'
zstd@zstd -3 -T0@zstd -3 -T0 -q < '$L' > '$O'
zstd@zstd -3 -T0 + sha256s@zstd -3 -T0 -q < '$L' > '$O' && openssl dgst -sha256 '$L' '$O' > /dev/null
plain@dockpack image (no --compress)@'$dp' image '$L' > '$O'
EOF

# Sizes: the blob dockpack stores (from --oci-dir: the same bytes as in
# the tar), each CLI's output; every one decodes to the layer.
blob_of() { # METHOD -> path of the one layer blob of an --oci-dir image
	rm -rf "$work/oci"
	"$dp" image --compress "$1" --oci-dir "$work/oci" "$L"
	python3 - "$work/oci" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + '/index.json'))
m = json.load(open(d + '/blobs/sha256/' + idx['manifests'][0]['digest'][7:]))
print(d + '/blobs/sha256/' + m['layers'][0]['digest'][7:])
PY
}
i=0
while IFS='@' read -r group name cmd; do
	i=$((i + 1))
	case $group@$name in
	plain@*)
		blob=$L
		;;
	*@dockpack*)
		blob=$(blob_of "$group")
		;;
	*)
		sh -c "$cmd"
		blob=$O
		;;
	esac
	wc -c < "$blob" > "$work/size.$i"
	case $group in
	gzip) gzip -dc < "$blob" ;;
	zstd) zstd -dc -q < "$blob" ;;
	*) cat "$blob" ;;
	esac | cmp -s - "$L" || { echo "compress-image.sh: $name does not decode to the layer" >&2; exit 1; }
done < "$work/cmds"
rm -rf "$work/oci" "$O"
# Two runs, the same image (to a file and to a pipe).
for m in gzip zstd; do
	"$dp" image --compress $m "$L" > "$work/again"
	"$dp" image --compress $m "$L" | cmp -s - "$work/again" ||
		{ echo "compress-image.sh: two $m images differ" >&2; exit 1; }
done
rm -f "$work/again"

sync
for group in gzip zstd plain; do
	set --
	while IFS='@' read -r g name cmd; do
		[ "$g" = "$group" ] && set -- "$@" -n "$name" "$cmd"
	done < "$work/cmds"
	hyperfine --warmup 1 --runs "$runs" --style basic --export-json "$work/$group.json" "$@"
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
cmds = [l.rstrip('\n').split('@') for l in open(work + '/cmds')]
sizes = {c[1]: int(open('%s/size.%d' % (work, i + 1)).read()) for i, c in enumerate(cmds)}
res = {}
for g in ('gzip', 'zstd', 'plain'):
    for r in json.load(open('%s/%s.json' % (work, g)))['results']:
        res[r['command']] = (r['mean'], r['user'] + r['system'])
print('\n%-34s %8s %8s %12s' % ('', 'wall s', 'cpu s', 'bytes'))
for _, n, _ in cmds:
    print('%-34s %8.2f %8.2f %12d' % (n, res[n][0], res[n][1], sizes[n]))
print('\nratios ours / peer (< 1: ours is faster, or smaller):')
for ours, peer in (('dockpack image --compress gzip', 'gzip -6 -n'),
                   ('dockpack image --compress gzip', 'pigz -6 -n'),
                   ('dockpack image --compress gzip', 'pigz -6 -n + sha256s'),
                   ('dockpack image --compress zstd', 'zstd -3 -T0'),
                   ('dockpack image --compress zstd', 'zstd -3 -T0 + sha256s')):
    print('  %-30s / %-21s wall %.2f  cpu %.2f  size %.3f' % (
        ours, peer, res[ours][0] / res[peer][0], res[ours][1] / res[peer][1],
        sizes[ours] / sizes[peer]))
PY
