#!/bin/sh
# kvmrun against the seed's bare qemu invocation (default.runkvm.do), same
# kernel, same image, TCG, three serial ports each; prints the ratio of the
# mean times (the target: kvmrun at most 5% slower than bare qemu).
#
# The image is the hello container (C hello world + its libraries, as the
# seed's libs.fs) plus the static busybox the seed's rdinit script needs.
# The bare side boots it with the seed's /rdinit; kvmrun boots the same
# cpio with its own init.
#
# Usage: scripts/bench/kvmrun.sh [RUNS]    (needs qemu-system-x86_64, a
# /boot/vmlinuz-*, busybox-static, cpio, cc, hyperfine)
set -eu
runs=${1:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p kvmrun --manifest-path "$root/Cargo.toml"
kvmrun=$target/release/kvmrun

kernel=${KVMRUN_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -n 1)}
qemu=qemu-system-$(uname -m)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

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

# The seed's default.runkvm.do, TCG instead of kvm (a paravirtual kvm_pvm
# /dev/kvm never boots an ordinary kernel: see kvmrun/src/accel.rs),
# 128M as kvmrun's default for this image.
cat >"$work/bare.sh" <<BARE
#!/bin/sh
rm -f "$work/out" "$work/code"
$qemu -accel tcg -m 128M -kernel "$kernel" -initrd "$work/image.initrd" \\
	-append 'rdinit=/rdinit panic=1 console=ttyS0 quiet' \\
	-no-reboot -display none -nodefaults \\
	-chardev stdio,mux=on,id=char0 \\
	-chardev file,id=char1,path="$work/out" \\
	-chardev file,id=char2,path="$work/code" \\
	-serial chardev:char0 -serial chardev:char1 -serial chardev:char2 </dev/null >/dev/null 2>&1
cat "$work/out" >/dev/null
BARE
chmod +x "$work/bare.sh"

# Both must work before they are timed.
"$work/bare.sh"
tr -d '\r' <"$work/out" | grep -qx 'Hello, world!' || { echo "bare qemu run failed" >&2; exit 1; }
[ "$("$kvmrun" --accel tcg "$work/image.initrd" 2>/dev/null)" = "Hello, world!" ] || { echo "kvmrun failed" >&2; exit 1; }

hyperfine --runs "$runs" --warmup 1 --export-json "$work/h.json" \
	-n bare-qemu "$work/bare.sh" \
	-n kvmrun "$kvmrun --accel tcg $work/image.initrd >/dev/null 2>&1"
# kvmrun's own work before qemu starts (copy the initrd, append the init,
# measure memory): qemu replaced by /bin/true.
hyperfine --runs 20 -i --export-json "$work/p.json" -n prepare \
	"$kvmrun --accel tcg --qemu /bin/true $work/image.initrd"
python3 - "$work/h.json" "$work/p.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
p = json.load(open(sys.argv[2]))["results"][0]["mean"]
print(f"kvmrun / bare qemu (mean): {r['kvmrun'] / r['bare-qemu']:.3f}  (target <= 1.05)")
print(f"kvmrun host-side preparation: {p * 1000:.1f} ms = {p / r['bare-qemu'] * 100:.2f}% of a bare boot")
PY
