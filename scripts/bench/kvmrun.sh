#!/bin/sh
# Hello boot-and-run, wall time, pair by pair (TCG times vary a lot from
# run to run on a shared machine: each round runs every contestant once, in
# turn, and the ratios are taken within a round):
#   bare     the seed's bare qemu call (default.runkvm.do) on the Debian
#            kernel's bzImage;
#   debian   kvmrun on the same kernel (it boots the cached vmlinux through
#            PVH); target: at most 0.6x bare, pair by pair;
#   cookbook kvmrun on the cookbook's kernel (scripts/kernel, made by
#            `redo kernel` or `make kernel`; or $COOKBOOK_KERNEL); target:
#            median at most 1.0 s.
# Then the Debian container's `dpkg -l | wc -l` through kvmrun on both
# kernels (the tree in $BENCH_TREE, a debootstrap --variant=minbase).
#
# Where KVM works (/dev/kvm with kvm_intel or kvm_amd) the same commands
# run under TCG here, as said in the output: this measures software
# emulation, what most CI runners have.
#
# Usage: scripts/bench/kvmrun.sh [ROUNDS]    (needs qemu-system-x86_64, a
# /boot/vmlinuz-*, busybox-static, cpio, cc; BENCH_TREE for the dpkg part)
set -eu
rounds=${1:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p kvmrun -p mkinitrd --manifest-path "$root/Cargo.toml"
kvmrun=$target/release/kvmrun
mkinitrd=$target/release/mkinitrd

debian=${DEBIAN_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1)}
cookbook=${COOKBOOK_KERNEL:-$root/scripts/kernel}
[ -r "$cookbook" ] || cookbook=
qemu=qemu-system-$(uname -m)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
# A cache of this run's own: the first kvmrun on each kernel extracts, the
# warm-up run below, so the timed runs measure what every later run costs.
export XDG_CACHE_HOME="$work/cache"
unset KVMRUN_KERNEL

mkdir -p "$work/img/bin"
printf '#include <stdio.h>\nint main(void){puts("Hello, world!");return 0;}\n' >"$work/hello.c"
cc -O2 -o "$work/img/bin/hello" "$work/hello.c"
for lib in $(ldd "$work/img/bin/hello" | grep -o '/[^ ]*'); do
	mkdir -p "$work/img$(dirname "$lib")"
	cp "$lib" "$work/img$lib"
done
ln -s bin/hello "$work/img/init"
cp /bin/busybox "$work/img/bin/busybox"
# The seed's rdinit, with the busybox at /bin.
cat >"$work/img/rdinit" <<'RDINIT'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs none /dev
/init >/dev/ttyS1
echo $? >/dev/ttyS2
/bin/busybox poweroff -f
RDINIT
chmod +x "$work/img/rdinit"
(cd "$work/img" && find . | cpio -o -H newc --quiet) >"$work/image.initrd"

# The seed's default.runkvm.do, TCG instead of kvm (a paravirtual KVM hangs ordinary kernels),
# 128M as kvmrun's default for this image.
cat >"$work/bare.sh" <<BARE
#!/bin/sh
rm -f "$work/out" "$work/code"
$qemu -accel tcg -m 128M -kernel "$debian" -initrd "$work/image.initrd" \\
	-append 'rdinit=/rdinit panic=1 console=ttyS0 quiet' \\
	-no-reboot -display none -nodefaults \\
	-chardev stdio,mux=on,id=char0 \\
	-chardev file,id=char1,path="$work/out" \\
	-chardev file,id=char2,path="$work/code" \\
	-serial chardev:char0 -serial chardev:char1 -serial chardev:char2 </dev/null >/dev/null 2>&1
cat "$work/out" >/dev/null
BARE
chmod +x "$work/bare.sh"

if [ -e /dev/kvm ] && grep -qE '^kvm_(intel|amd) ' /proc/modules 2>/dev/null; then
	echo "note: this host has a working KVM; every figure below is TCG all the same"
else
	echo "note: no usable KVM here ($(ls /sys/module 2>/dev/null | grep -E '^kvm' | tr '\n' ' ')): TCG"
fi
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "debian kernel: $debian"
echo "cookbook kernel: ${cookbook:-(not built: make -C scripts kernel)}"

# Each contestant works once (and fills the cache) before it is timed.
"$work/bare.sh"
tr -d '\r' <"$work/out" | grep -qx 'Hello, world!' || { echo "bare qemu run failed" >&2; exit 1; }
for k in "$debian" $cookbook; do
	out=$("$kvmrun" --accel tcg --kernel "$k" "$work/image.initrd" 2>"$work/err") || true
	[ "$out" = "Hello, world!" ] || { echo "kvmrun failed on $k:" >&2; cat "$work/err" >&2; exit 1; }
done

now() { date +%s.%N; }
timed() { # prints the wall seconds of "$@"
	t0=$(now)
	"$@" >/dev/null 2>&1 || echo "failed: $*" >&2
	echo "$(now) $t0" | awk '{printf "%.3f", $1 - $2}'
}
: >"$work/times"
i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	b=$(timed "$work/bare.sh")
	d=$(timed "$kvmrun" --accel tcg --kernel "$debian" "$work/image.initrd")
	c=-
	[ -z "$cookbook" ] || c=$(timed "$kvmrun" --accel tcg --kernel "$cookbook" "$work/image.initrd")
	echo "$b $d $c" >>"$work/times"
done
awk -v cb="$cookbook" '
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ n++; b[n] = $1; d[n] = $2; c[n] = $3; r[n] = $2 / $1
  printf "round %d: bare %.2f s  kvmrun/debian %.2f s (%.2fx)  kvmrun/cookbook %s s\n", n, $1, $2, $2 / $1, $3 }
END {
	mb = median(b, n); md = median(d, n); mr = median(r, n)
	printf "hello, median of %d: bare qemu %.2f s; kvmrun on the Debian kernel %.2f s, %.2fx bare pair by pair (target <= 0.6)\n", n, mb, md, mr
	if (cb != "") printf "hello, median of %d: kvmrun on the cookbook kernel %.2f s (target <= 1.0)\n", n, median(c, n)
}' "$work/times"

# The Debian container: dpkg -l | wc -l on each kernel.
tree=${BENCH_TREE:-}
if [ -z "$tree" ] || ! [ -d "$tree/var/lib/dpkg" ]; then
	echo "dpkg -l: skipped: set BENCH_TREE to a Debian tree (debootstrap --variant=minbase)"
	exit 0
fi
(cd "$tree" && find . -print) | LC_ALL=C sort | "$mkinitrd" -C "$tree" >"$work/debian.initrd"
for k in "$debian" $cookbook; do
	t0=$(now)
	n=$("$kvmrun" --accel tcg --kernel "$k" "$work/debian.initrd" -- /bin/sh -c 'dpkg -l | wc -l' 2>"$work/err") ||
		{ echo "dpkg -l on $k failed:" >&2; cat "$work/err" >&2; n=failed; }
	echo "$(now) $t0" | awk -v k="$k" -v n="$n" '{printf "dpkg -l | wc -l on %s: %s (%.1f s)\n", k, n, $1 - $2}'
done
