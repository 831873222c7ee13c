#!/bin/sh
# usage: ./docker.sh engine | load IMAGE.tar | has ID | run ID
# One place for the engine choice: docker where a daemon answers
# (DOCKER_HOST is honoured), else podman; $ENGINE overrides.
engine() {
	if [ -n "${ENGINE:-}" ]; then
		echo "$ENGINE"
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		echo docker
	elif command -v podman >/dev/null 2>&1; then
		echo podman
	else
		echo " -- neither a docker daemon nor podman is available" >&2
		return 1
	fi
}
e=$(engine) || exit 1
case $1 in
engine)
	echo "$e" ;;
load)
	"$e" load -i "$2" ;;
has)
	"$e" image inspect "$2" >/dev/null 2>&1 ;;
run)
	id=${2#sha256:}
	if [ "$e" = podman ] && [ "$(id -u)" = 0 ] &&
	   [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
		# Hybrid cgroups (cgroup v1 with v2 under unified/): podman as
		# root runs only with cgroup2 on /sys/fs/cgroup, in a private
		# mount namespace so the host keeps its own (ENVIRONMENT.md).
		exec unshare -m sh -c 'umount -R /sys/fs/cgroup &&
			mount -t cgroup2 none /sys/fs/cgroup &&
			exec podman run --rm --cgroups=disabled \
				--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
				--network none "$1"' sh "$id"
	fi
	exec "$e" run --rm --network none "$id" ;;
*)
	echo "usage: $0 engine | load IMAGE | has ID | run ID" >&2
	exit 2 ;;
esac
