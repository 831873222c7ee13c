#!/bin/sh
# The main job, for a new user with the Rust toolchain: builds the tools,
# builds the cookbook's hello container, runs it in a user-namespace chroot,
# in a virtual machine and in podman (or docker, where a daemon answers),
# and prints a table: runtime, result, seconds.
#
# As root on Debian/Ubuntu it installs the system packages it needs with
# apt-get; otherwise it prints the exact apt-get command and runs what it
# can. DEMO_BIN=DIR uses tools built already in DIR instead of building.
# The container is built in $DEMO_DIR (default target/demo) by the
# cookbook's .do files, driven by the tests' small redo driver (minredo);
# `make -C scripts` drives the same files.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd -P)
work=${DEMO_DIR:-$root/target/demo}
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
bin=$target/release

say() { printf '%s\n' "demo: $*" >&2; }

if [ -z "${DEMO_BIN:-}" ] && ! command -v cargo >/dev/null 2>&1; then
	say "cargo is not on PATH: install Rust (https://rustup.rs), then run $0 again"
	exit 1
fi

# What each runtime needs, as Debian packages.
missing=
need_pkg() { missing="$missing $1"; }
command -v cc >/dev/null 2>&1 || need_pkg "gcc libc6-dev"
command -v unshare >/dev/null 2>&1 || need_pkg util-linux
command -v gzip >/dev/null 2>&1 || need_pkg gzip
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkg qemu-system-x86
ls /boot/vmlinuz-* >/dev/null 2>&1 || need_pkg linux-image-amd64
command -v busybox >/dev/null 2>&1 || need_pkg busybox-static
if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
	command -v podman >/dev/null 2>&1 || need_pkg "podman crun uidmap"
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >&2
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $missing >&2
	else
		say "some runtimes need packages this machine lacks; as root, run:"
		say "  apt-get install --no-install-recommends$missing"
		say "going on with what is here"
	fi
fi

if [ -n "${DEMO_BIN:-}" ]; then
	# Tools built already (e.g. a debug build): use them as they are.
	bin=$DEMO_BIN
else
	say "building the tools (cargo build --release)"
	(cd "$root" && cargo build --release --workspace --bins) >&2
fi
PATH=$bin:$PATH
export PATH

say "building the hello container in $work"
mkdir -p "$work"
for f in "$root"/scripts/*; do
	case $f in
	*/test.sh | */demo.sh | */skips.sh) ;;
	*.do | *.sh | *.c | *.options | *.diffbase | *.layers | */Makefile) cp "$f" "$work/" ;;
	esac
done
cd "$work"
if ! command -v cc >/dev/null 2>&1; then
	say "no C compiler: cannot build hello (apt-get install gcc libc6-dev)"
	exit 1
fi
minredo libs.fs simple.image.gz >build.log 2>&1 || {
	tail -n 20 build.log >&2
	say "building the container failed (log: $work/build.log)"
	exit 1
}

rows=
failed=0
row() { rows="$rows$(printf '%-10s %-32s %s' "$1" "$2" "$3")
"; }
# usage: try RUNTIME TARGET REASON-IF-SKIPPED (empty: runnable)
try() {
	if [ -n "$3" ]; then
		row "$1" "skipped: $3" "-"
		return
	fi
	start=$(date +%s.%N)
	if minredo "$2" >"$2.log" 2>&1; then
		result=$(cat "$2")
		[ "$result" = "Hello, world!" ] || failed=1
	else
		result="FAILED (see $work/$2.log)"
		failed=1
	fi
	end=$(date +%s.%N)
	row "$1" "$result" "$(echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }')"
}

why=
command -v unshare >/dev/null 2>&1 && ! unshare -r true 2>/dev/null &&
	why="user namespaces refused (chrootrun names the knob)"
try chroot libs.runlocal "$why"

why=
command -v qemu-system-x86_64 >/dev/null 2>&1 || why="no qemu-system-x86_64"
[ -n "$why" ] || [ -n "${KVMRUN_KERNEL:-}" ] || ls /boot/vmlinuz-* >/dev/null 2>&1 ||
	why="no kernel in /boot"
try vm libs.runkvm "$why"

why=
engine=$(./docker.sh engine 2>/dev/null) || { engine=podman; why="no docker daemon, no podman"; }
try "$engine" simple.rundocker "$why"

echo
printf '%-10s %-32s %s\n' runtime result seconds
printf '%s' "$rows"
echo
echo "image: $work/simple.image ($(cat simple.iid)), compressed: simple.image.gz"
exit $failed
