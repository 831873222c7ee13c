# kernel: a small x86-64 kernel for kvmrun, built from Debian's
# linux-source-6.1 (apt-get install linux-source-6.1 flex bison bc
# libelf-dev libssl-dev) with `make tinyconfig` plus kernel.config.
# About 6 minutes on two quiet cores, 12 with other builds running. The
# product is the bzImage; kvmrun boots its vmlinux through PVH (it
# extracts and caches it). Boot it with
# KVMRUN_KERNEL=$PWD/kernel, as default.runkvm.do does where it exists.
. ./path.sh
redo-ifchange kernel.config
src=${LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
./need.sh make cc flex bison bc tar xz
if ! [ -r "$src" ]; then
	echo "kernel.do: $src: not found: apt-get install linux-source-6.1 (or set LINUX_SOURCE)" >&2
	exit 1
fi
build=$(mktemp -d "${TMPDIR:-/tmp}/kernel.XXXXXX")
trap 'rm -rf "$build"' EXIT
tar -xJf "$src" -C "$build" --strip-components=1
jobs=$(nproc 2>/dev/null || echo 2)
# Everything make prints goes to stderr: stdout would be the product.
(
	cd "$build" &&
		make -s ARCH=x86_64 tinyconfig &&
		scripts/kconfig/merge_config.sh -m .config "$OLDPWD/kernel.config" &&
		make -s ARCH=x86_64 olddefconfig &&
		make -s ARCH=x86_64 -j"$jobs" bzImage
) >&2
# Every option asked for must have survived olddefconfig (a dependency
# missing turns one off without a word).
missing=$(grep '^CONFIG_.*=' kernel.config | while IFS= read -r opt; do
	grep -qx "$opt" "$build/.config" || printf ' %s' "$opt"
done)
off=$(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' kernel.config | while IFS= read -r opt; do
	! grep -q "^$opt=" "$build/.config" || printf ' %s' "$opt"
done)
[ -z "$off" ] || missing="$missing (and still on:$off)"
if [ -n "$missing" ]; then
	echo "kernel.do: kernel.config options not set:$missing" >&2
	exit 1
fi
cp "$build/arch/x86/boot/bzImage" "$3"
