#!/bin/sh
# usage: ./probe.sh
# Prints (stdout) the targets this machine can build and run, and says on
# stderr what it leaves out and why, one line each: `skipping WHAT: WHY`
# when the machine lacks something, `leaving out WHAT: WHY` when a NO_*
# variable asks for it. all.sh reads these lines for its summary and
# STRICT=1. NO_DEBIAN=1 leaves out the Debian container (it downloads
# ~200 MB); NO_KVM=1, NO_DOCKER=1, NO_CHROOT=1 a runtime; NO_DEBIAN_KVM=1
# the Debian VM only.
# Without the project's own tools nothing can be built: it fails with
# need.sh's one message instead of skipping everything.
. ./path.sh
./need.sh fileids layerdiff elfdeps mkinitrd dockpack chrootrun kvmrun || exit 1
skip() { echo "skipping $1: $2" >&2; }
asked() { echo "leaving out $1: $2 is set" >&2; }
simple=1 debian=1 chroot=1 kvm=1 docker=1
if ! ./need.sh cc 2>/dev/null; then
	skip "simple and libs" "no C compiler for hello (apt-get install gcc libc6-dev)"
	simple=
fi
if [ -n "${NO_DEBIAN:-}" ]; then
	asked "debian" NO_DEBIAN
	debian=
elif ! ./need.sh debootstrap 2>/dev/null; then
	skip "debian" "no debootstrap on PATH, in /usr/sbin or /sbin (apt-get install debootstrap)"
	debian=
elif [ "$(id -u)" != 0 ] && ! { ./need.sh fakechroot fakeroot 2>/dev/null &&
		fakechroot fakeroot true 2>/dev/null; }; then
	skip "debian" "not root, and fakechroot fakeroot does not run here (apt-get install fakechroot fakeroot)"
	debian=
fi
if [ -n "${NO_CHROOT:-}" ]; then
	asked "chroot runs" NO_CHROOT; chroot=
elif command -v unshare >/dev/null 2>&1 && ! unshare -r true 2>/dev/null; then
	skip "chroot runs" "user namespaces are refused here (chrootrun says which knob)"
	chroot=
fi
kernel=${KVMRUN_KERNEL:-}
[ -n "$kernel" ] || kernel=$(ls /boot/vmlinuz-* 2>/dev/null | tail -n 1)
if [ -n "${NO_KVM:-}" ]; then
	asked "VM runs" NO_KVM; kvm=
elif ! ./need.sh qemu-system-x86_64 2>/dev/null; then
	skip "VM runs" "no qemu-system-x86_64 (apt-get install qemu-system-x86)"; kvm=
elif [ -z "$kernel" ] || ! [ -r "$kernel" ]; then
	skip "VM runs" "no readable kernel in /boot (apt-get install linux-image-amd64, or set KVMRUN_KERNEL)"; kvm=
fi
if [ -n "${NO_DOCKER:-}" ]; then
	asked "docker/podman runs" NO_DOCKER; docker=
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
	if [ -n "$kvm" ]; then
		if [ -n "${NO_DEBIAN_KVM:-}" ]; then
			asked "the Debian VM" NO_DEBIAN_KVM
		else
			echo debian.runkvm
		fi
	fi
	[ -z "$docker" ] || echo debian.rundocker
fi
