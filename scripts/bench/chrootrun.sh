#!/bin/sh
# Benchmark chrootrun against its peers, side by side in one run:
#   1. `chrootrun DIR /init` vs `unshare -r chroot DIR /init` on the hello
#      container (a dynamically linked hello world, its libraries from ldd);
#      and `bwrap --unshare-all --new-session --die-with-parent --proc /proc
#      --dev /dev` (every namespace, a new session: the fair peer now that
#      chrootrun always makes PID, UTS and IPC namespaces and a session);
#   2. `chrootrun --proc --dev --net` vs that bwrap;
#   3. the same as 1 with /bin/true on a Debian tree ($BENCH_TREE, default
#      target/bench-tree, what .ci/run makes; make one with
#      `debootstrap --variant=minbase --include=busybox bookworm DIR`), if present.
# Prints the median of each and the ratio chrootrun/peer (target: <= 1).
# RUNS (default 300) sets the number of runs.
set -eu
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p chrootrun
bin=$(cd "$target/release" && pwd)/chrootrun
runs=${RUNS:-300}
# The tree .ci/run makes, in this checkout.
default_tree=$(cd "$(dirname "$0")/../.." && pwd)/target/bench-tree
tree_deb=${BENCH_TREE:-$default_tree}

work=$(mktemp -d /tmp/chrootrun-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
hello=$work/hello
mkdir -p "$hello/bin" "$hello/proc" "$hello/dev"
printf '#include <stdio.h>\nint main(void){puts("Hello, world!");return 0;}\n' >"$work/hello.c"
cc -O2 -o "$hello/bin/hello" "$work/hello.c"
ldd "$hello/bin/hello" | tr ' \t' '\n\n' | grep '^/' | while read -r lib; do
	mkdir -p "$hello$(dirname "$lib")"
	cp -L "$lib" "$hello$lib"
done
ln -s bin/hello "$hello/init"
test "$("$bin" "$hello")" = "Hello, world!"

# compare NAME CMD PEER...: hyperfine all of them in one run (interleaved
# warmups, the same machine state), print each median and the ratio
# chrootrun/peer for every peer.
compare() {
	name=$1
	shift
	json=$work/$name.json
	hyperfine -N --warmup 20 --runs "$runs" --style none --export-json "$json" "$@" >/dev/null 2>&1
	jq -r --arg n "$name" '.results as $r |
	  "\($n): chrootrun median \($r[0].median*1000*1000|round/1000) ms (stddev \($r[0].stddev*1000*1000|round/1000))",
	  ($r[1:][] | "  \(.command|split(" ")[0]) median \(.median*1000*1000|round/1000) ms (stddev \(.stddev*1000*1000|round/1000)), ratio chrootrun/peer \(($r[0].median/.median)*100|round/100)")' "$json"
}

# bwrap with every namespace, a new session and a PID 1 that dies with
# its parent: what chrootrun now does by default.
bwrap_all="bwrap --unshare-all --new-session --die-with-parent --proc /proc --dev /dev"
if command -v bwrap >/dev/null; then
	compare hello "$bin $hello /init" "unshare -r chroot $hello /init" "$bwrap_all --bind $hello / /init"
	compare proc-dev-net "$bin --proc --dev --net $hello /init" "$bwrap_all --bind $hello / /init"
else
	echo "bwrap not installed (apt-get install bubblewrap): comparing with unshare only"
	compare hello "$bin $hello /init" "unshare -r chroot $hello /init"
fi
if [ -x "$tree_deb/bin/true" ]; then
	if command -v bwrap >/dev/null; then
		compare debian-true "$bin $tree_deb /bin/true" "unshare -r chroot $tree_deb /bin/true" \
			"$bwrap_all --bind $tree_deb / /bin/true"
	else
		compare debian-true "$bin $tree_deb /bin/true" "unshare -r chroot $tree_deb /bin/true"
	fi
else
	echo "debian-true: no tree at $tree_deb, skipped"
fi
# How busy the shared machine was: the load average over the run.
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
