# NAME.load: NAME.image loaded into docker (where a daemon answers) or
# podman; the product is the image id that rundocker runs.
redo-ifchange "$2.image" "$2.iid"
./docker.sh load "$2.image" >&2
iid=$(cat "$2.iid")
echo "$iid"
