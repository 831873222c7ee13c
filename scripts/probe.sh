#!/bin/sh
# usage: ./probe.sh
# Prints (stdout) the targets this machine can build and run, and says on
# stderr what it skips and why. Shared by all.do and the Makefile's `all`.
# NO_DEBIAN=1 skips the Debian container (it downloads ~200 MB);
# NO_KVM=1, NO_DOCKER=1, NO_CHROOT=1 skip a runtime; NO_DEBIAN_KVM=1 the
# Debian VM only.
skip() { echo "skipping $1: $2" >&2; }
simple=1 debian=1 chroot=1 kvm=1 docker=1
if ! ./need.sh cc fileids layerdiff elfdeps dockpack 2>/dev/null; then
	skip "simple and libs" "$(./need.sh cc fileids layerdiff elfdeps dockpack 2>&1)"
	simple=
fi
if ! ./need.sh fileids layerdiff dockpack debootstrap 2>/dev/null; then
	skip "debian" "$(./need.sh fileids layerdiff dockpack debootstrap 2>&1)"
	debian=
elif [ "$(id -u)" != 0 ] && ! { ./need.sh fakechroot fakeroot 2>/dev/null &&
		fakechroot fakeroot true 2>/dev/null; }; then
	skip "debian" "not root, and fakechroot fakeroot does not run here"
	debian=
elif [ -n "${NO_DEBIAN:-}" ]; then
	skip "debian" "NO_DEBIAN is set"
	debian=
fi
if [ -n "${NO_CHROOT:-}" ]; then
	skip "chroot runs" "NO_CHROOT is set"; chroot=
elif ! ./need.sh chrootrun 2>/dev/null; then
	skip "chroot runs" "chrootrun is not on PATH"; chroot=
elif command -v unshare >/dev/null 2>&1 && ! unshare -r true 2>/dev/null; then
	skip "chroot runs" "user namespaces are refused here (chrootrun says which knob)"
	chroot=
fi
kernel=${KVMRUN_KERNEL:-}
[ -n "$kernel" ] || kernel=$(ls /boot/vmlinuz-* 2>/dev/null | tail -n 1)
if [ -n "${NO_KVM:-}" ]; then
	skip "VM runs" "NO_KVM is set"; kvm=
elif ! ./need.sh kvmrun mkinitrd qemu-system-x86_64 2>/dev/null; then
	skip "VM runs" "$(./need.sh kvmrun mkinitrd qemu-system-x86_64 2>&1)"; kvm=
elif [ -z "$kernel" ] || ! [ -r "$kernel" ]; then
	skip "VM runs" "no readable kernel in /boot (apt-get install linux-image-amd64)"; kvm=
fi
if [ -n "${NO_DOCKER:-}" ]; then
	skip "docker/podman runs" "NO_DOCKER is set"; docker=
elif ! ./docker.sh engine >/dev/null 2>&1; then
	skip "docker/podman runs" "no docker daemon answers and podman is not installed"
	docker=
fi
if [ -n "$simple" ]; then
	echo simple.image.gz
	[ -z "$chroot" ] || echo libs.runlocal
	[ -z "$kvm" ] || echo libs.runkvm
	[ -z "$docker" ] || echo simple.rundocker
fi
if [ -n "$debian" ]; then
	echo debian.image
	[ -z "$chroot" ] || echo debian.runlocal
	# NO_DEBIAN_KVM=1: the Debian VM needs ~3x its 120 MB initrd in RAM.
	[ -z "$kvm" ] || [ -n "${NO_DEBIAN_KVM:-}" ] || echo debian.runkvm
	[ -z "$docker" ] || echo debian.rundocker
fi
