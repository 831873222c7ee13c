# NAME.load: NAME.image loaded into docker (where a daemon answers) or
# podman; the product is the image id that rundocker runs.
# NAME.iid is a side product of NAME.image: ask for it only once the
# image is built (redo -j checks the arguments of one redo-ifchange in
# parallel, and would find the .iid missing while the image is built).
redo-ifchange "$2.image"
redo-ifchange "$2.iid"
./docker.sh load "$2.image" >&2
iid=$(cat "$2.iid")
echo "$iid"
