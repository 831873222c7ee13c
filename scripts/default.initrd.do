# NAME.initrd: the whole NAME/ tree as a newc cpio for the kernel,
# compressed with zstd where the kernel that will boot it takes zstd.
# kvmrun appends its own init, so no rdinit script is needed.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
# The kernel named by $KVMRUN_KERNEL decides the compression (below).
redo-ifchange "$2.fs" KVMRUN_KERNEL.setting
./need.sh mkinitrd
if [ -e "$2.fakeroot" ]; then
	redo-ifchange "$2.fakeroot"
else
	redo-ifcreate "$2.fakeroot"
fi

# Which kernel boots it: the one default.runkvm.do hands kvmrun
# ($KVMRUN_KERNEL, else the cookbook's `kernel` where it is built), else
# kvmrun's own choice (/boot/vmlinuz-$(uname -r), else the newest
# /boot/vmlinuz-*). Whether it takes zstd is in its configuration
# (CONFIG_RD_ZSTD, the kernel's usr/Kconfig), which is beside each of
# them: the cookbook's kernel is built from kernel.config (and kernel.do
# fails when an option there did not survive), Debian's has
# /boot/config-VERSION beside /boot/vmlinuz-VERSION. Both take zstd
# today; the check keeps a kernel without it (another KVMRUN_KERNEL, a
# host kernel built without CONFIG_RD_ZSTD) booting. A kernel whose
# configuration cannot be found gets the uncompressed archive, which every
# kernel with initramfs support unpacks. zstd rather than gzip or lz4: at
# level 3 it is both the fastest to make on two cores and the smallest
# (scripts/bench/compress.sh), and mkinitcpio chose it as its default.
kernel=${KVMRUN_KERNEL:-}
if [ -z "$kernel" ]; then
	if [ -e kernel ]; then
		kernel=$PWD/kernel
	else
		# Built later, it is the one that boots: check again then.
		redo-ifcreate kernel
	fi
fi
if [ -z "$kernel" ]; then
	kernel=/boot/vmlinuz-$(uname -r)
	[ -e "$kernel" ] || kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
fi
case $kernel in
"$PWD/kernel" | kernel)
	config=kernel.config
	redo-ifchange kernel.config
	;;
*/vmlinuz-*) config=${kernel%/*}/config-${kernel##*/vmlinuz-} ;;
*) config= ;;
esac
compress=
if [ -n "$config" ] && grep -qx 'CONFIG_RD_ZSTD=y' "$config" 2>/dev/null; then
	compress="--compress zstd"
fi
(cd "$2" && find . -print) | LC_ALL=C sort | mkinitrd -C "$2" $(./owner.sh "$2") $compress
