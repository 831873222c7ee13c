#!/bin/sh
# Benchmark dockpack against its peers on a debootstrap minbase tree:
#   dockpack layer   vs  GNU tar -c --no-recursion -T LIST (same file list)
#   dockpack image   vs  skopeo copy oci:DIR docker-archive:FILE,
#                    and vs one read+SHA-256 of the layer (openssl, SHA-NI)
# Usage: scripts/bench/dockpack.sh [TREE]   (default $BENCH_TREE or target/bench-tree, what .ci/run makes)
# Make a tree with: debootstrap --variant=minbase --include=busybox bookworm DIR
set -eu
# The tree .ci/run makes, in this checkout.
default_tree=$(cd "$(dirname "$0")/../.." && pwd)/target/bench-tree
TREE=${1:-${BENCH_TREE:-$default_tree}}
[ -d "$TREE" ] || { echo "no tree at $TREE (debootstrap --variant=minbase --include=busybox bookworm DIR)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
cargo build --release -q -p dockpack --manifest-path "$HERE/Cargo.toml"
DP=$CARGO_TARGET_DIR/release/dockpack
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=0

(cd "$TREE" && find . | LC_ALL=C sort) > "$W/names"
# List lines as fileids prints them (so dockpack also verifies every digest).
python3 - "$TREE" "$W/names" > "$W/list" <<'PY'
import hashlib, os, stat, sys
root, names = sys.argv[1], sys.argv[2]
for line in open(names, 'rb'):
    n = line.rstrip(b'\n'); p = os.path.join(root.encode(), n)
    st = os.lstat(p); m = st.st_mode
    if stat.S_ISREG(m): d = hashlib.file_digest(open(p, 'rb'), 'sha256').hexdigest()
    elif stat.S_ISLNK(m): d = hashlib.sha256(os.readlink(p)).hexdigest()
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m): d = '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    else: d = '0'
    sys.stdout.buffer.write(n + b' %07o-%d-%d-%s\n' % (m, st.st_uid, st.st_gid, d.encode()))
PY
echo "tree: $TREE ($(wc -l < "$W/names") entries, $(du -sh "$TREE" | cut -f1))"

# Each group starts with no writeback pending from what ran before it
# (the layer group writes about 6 GB): on 2 cores the flusher would
# compete with whichever command runs next.
sync
hyperfine -N --warmup 2 --runs 10 --export-json "$W/layer.json" \
  -n "GNU tar" "sh -c 'tar -c --no-recursion -C $TREE -T $W/names -f $W/gnu.tar'" \
  -n "dockpack layer (names)" "sh -c '$DP layer -C $TREE < $W/names > $W/dp.tar'" \
  -n "dockpack layer (list, digests verified)" "sh -c '$DP layer -C $TREE < $W/list > $W/dp.tar'"

# A layer of the tree, then the image from it.
"$DP" layer -C "$TREE" < "$W/list" > "$W/layer.tar"
"$DP" image --tag bench:1 --oci-dir "$W/oci" "$W/layer.tar"
# The image to a new file (the previous run's output is removed by an
# untimed --prepare, as redo's $3 is always a new file), to the same file
# again (the shell's O_TRUNC frees the previous 200 MB inside the timed
# command, and ext4 starts writeback of a truncated-then-rewritten file
# when it is closed: auto_da_alloc), and to a pipe (the two-pass path).
# skopeo's output is removed untimed too.
sync
hyperfine -N --warmup 2 --runs 10 --export-json "$W/image.json" \
  --prepare true -n "read+sha256 once (openssl)" "sh -c 'openssl dgst -sha256 $W/layer.tar > /dev/null'" \
  --prepare "rm -f $W/img.tar" -n "dockpack image > new file" "sh -c '$DP image --tag bench:1 $W/layer.tar > $W/img.tar'" \
  --prepare true -n "dockpack image > same file" "sh -c '$DP image --tag bench:1 $W/layer.tar > $W/img2.tar'" \
  --prepare true -n "dockpack image | cat" "sh -c '$DP image --tag bench:1 $W/layer.tar | cat > /dev/null'" \
  --prepare "rm -f $W/sk.tar" -n "skopeo copy oci: docker-archive:" "sh -c 'skopeo copy -q oci:$W/oci:1 docker-archive:$W/sk.tar:bench:1'"
# The file and the pipe get the same bytes.
"$DP" image --tag bench:1 "$W/layer.tar" | cmp - "$W/img.tar"

python3 - "$W/layer.json" "$W/image.json" <<'PY'
import json, sys
def means(f): return {r['command']: r['mean'] for r in json.load(open(f))['results']}
l, i = means(sys.argv[1]), means(sys.argv[2])
tar = l['GNU tar']
print('\nratios (time / peer time; < 1 is faster):')
print('  dockpack layer (names) / GNU tar          = %.2f  (target <= 1.0)' % (l['dockpack layer (names)'] / tar))
print('  dockpack layer (list, verified) / GNU tar = %.2f' % (l['dockpack layer (list, digests verified)'] / tar))
sha = i['read+sha256 once (openssl)']
print('  dockpack image > new file / read+sha256 once  = %.2f  (target <= 1.2)' % (i['dockpack image > new file'] / sha))
print('  dockpack image > same file / read+sha256 once = %.2f  (overwriting the previous output)' % (i['dockpack image > same file'] / sha))
print('  dockpack image | cat / read+sha256 once       = %.2f  (output to a pipe: two passes)' % (i['dockpack image | cat'] / sha))
print('  dockpack image > new file / skopeo copy       = %.2f' % (i['dockpack image > new file'] / i['skopeo copy oci: docker-archive:']))
PY
