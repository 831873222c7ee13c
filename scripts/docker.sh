#!/bin/sh
# usage: ./docker.sh engine | load IMAGE.tar | has ID | run ID
# One place for the engine choice: docker where a daemon answers
# (DOCKER_HOST is honoured), else podman; $ENGINE overrides. ENGINE_FLAGS
# are the engine's global options, given before the subcommand, split at
# spaces (e.g. ENGINE_FLAGS='--runtime runc' for podman; ENGINE may hold
# options too: ENGINE='podman --runtime runc').
engine() {
	if [ -n "${ENGINE:-}" ]; then
		echo "$ENGINE" "${ENGINE_FLAGS:-}"
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		echo docker "${ENGINE_FLAGS:-}"
	elif command -v podman >/dev/null 2>&1; then
		echo podman "${ENGINE_FLAGS:-}"
	else
		echo " -- neither a docker daemon nor podman is available" >&2
		return 1
	fi
}
e=$(engine) || exit 1
cmd=${1:-} arg=${2:-}
# From here "$@" is the engine and its flags, split into words on purpose.
# shellcheck disable=SC2086
set -- $e
prog=$1
cgroup=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)
case $cmd in
engine)
	echo "$*" ;;
load)
	"$@" load -i "$arg" ;;
has)
	"$@" image inspect "$arg" >/dev/null 2>&1 ;;
run)
	id=${arg#sha256:}
	if [ "$prog" = podman ] && [ "$(id -u)" = 0 ] && [ "$cgroup" != cgroup2fs ]; then
		# Hybrid cgroups (cgroup v1 with v2 under unified/): podman as
		# root runs only with cgroup2 on /sys/fs/cgroup, in a private
		# mount namespace so the host keeps its own.
		exec unshare -m sh -c 'umount -R /sys/fs/cgroup &&
			mount -t cgroup2 none /sys/fs/cgroup &&
			exec "$@" run --rm --cgroups=disabled \
				--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
				--network none "$0"' "$id" "$@"
	fi
	if [ "$prog" != podman ] || [ "$cgroup" = cgroup2fs ]; then
		exec "$@" run --rm --network none "$id"
	fi
	# Rootless podman on hybrid cgroups: crun refuses them ("cgroups in
	# hybrid mode not supported"), runc runs. Keep the error to say so.
	err=$(mktemp "${TMPDIR:-/tmp}/docker.XXXXXX") || exit 125
	"$@" run --rm --network none "$id" 2>"$err"
	status=$?
	cat "$err" >&2
	if [ "$status" != 0 ] && grep -q 'hybrid mode' "$err"; then
		echo "docker.sh: rootless podman's runtime (crun) refuses this host's hybrid cgroups:" \
			"set ENGINE_FLAGS='--runtime runc' (apt-get install runc), or runtime = \"runc\"" \
			"under [engine] in ~/.config/containers/containers.conf" >&2
	fi
	rm -f "$err"
	exit "$status" ;;
*)
	echo "usage: $0 engine | load IMAGE | has ID | run ID" >&2
	exit 2 ;;
esac
