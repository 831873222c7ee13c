# NAME.rundocker: what the image's /init prints under docker or podman,
# run by image id (docker load names an image by its config digest, so the
# seed's layer id finds nothing).
redo-ifchange "$2.load" "$2.image"
iid=$(cat "$2.load")
# The engine may have changed (DOCKER_HOST) or lost the image since the
# load: load again rather than fail.
./docker.sh has "$iid" || ./docker.sh load "$2.image" >&2
./docker.sh run "$iid"
