#!/bin/sh
# Benchmark chrootrun against its peers, side by side in one run:
#   1. `chrootrun DIR /init` vs `unshare -r chroot DIR /init` on the hello
#      container (a dynamically linked hello world, its libraries from ldd);
#   2. `chrootrun --proc --dev --net` vs bwrap with the equivalent options;
#   3. the same as 1 with /bin/true on a Debian tree ($BENCH_TREE, default
#      /work/deb; make one with
#      `debootstrap --variant=minbase --include=busybox bookworm DIR`), if present.
# Prints the median of each and the ratio chrootrun/peer (target: <= 1).
# RUNS (default 300) sets the number of runs.
set -eu
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p chrootrun
bin=$(cd "$target/release" && pwd)/chrootrun
runs=${RUNS:-300}
tree_deb=${BENCH_TREE:-/work/deb}

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

# compare NAME CHROOTRUN-CMD PEER-CMD: hyperfine both, print medians and the ratio.
compare() {
	name=$1
	json=$work/$name.json
	hyperfine -N --warmup 20 --runs "$runs" --style none --export-json "$json" "$2" "$3" >/dev/null 2>&1
	jq -r --arg n "$name" '.results as $r |
	  "\($n): chrootrun median \($r[0].median*1000|.*1000|round/1000) ms, \($r[1].command|split(" ")[0]) median \($r[1].median*1000|.*1000|round/1000) ms, ratio chrootrun/peer \(($r[0].median/$r[1].median)*100|round/100)"' "$json"
}

compare hello "$bin $hello /init" "unshare -r chroot $hello /init"
if command -v bwrap >/dev/null; then
	compare proc-dev-net "$bin --proc --dev --net $hello /init" \
		"bwrap --unshare-user --uid 0 --gid 0 --unshare-pid --unshare-net --proc /proc --dev /dev --bind $hello / /init"
else
	echo "proc-dev-net: bwrap not installed (apt-get install bubblewrap), skipped"
fi
if [ -x "$tree_deb/bin/true" ]; then
	compare debian-true "$bin $tree_deb /bin/true" "unshare -r chroot $tree_deb /bin/true"
else
	echo "debian-true: no tree at $tree_deb, skipped"
fi
