# NAME.image: the layers named in NAME.image.layers (bottom first) as one
# image tar that docker, podman and skopeo load. The image id goes to
# NAME.iid beside it (a side product, like the .fs trees).
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$1.layers"
./need.sh dockpack
name=$2 out=$3
layers=$(cat "$1.layers")
set --
for layer in $layers; do
	set -- "$@" "$layer.layer"
done
redo-ifchange "$@"
for layer in $layers; do
	redo-ifchange "$layer.list.sha256"
	read -r id <"$layer.list.sha256"
	echo "layer: $id $layer" >&2
done
dockpack image --tag "$name:latest" --iidfile "$out.iid" "$@" >"$out"
mv "$out.iid" "$name.iid"
