# NAME.image: the layers named in NAME.image.layers (bottom first) as one
# image tar that docker, podman and skopeo load. The image id goes to
# NAME.iid beside it (a side product, like the .fs trees).
# The layer blobs are compressed with $COMPRESS (dockpack image --compress:
# gzip or zstd, with an optional :LEVEL; `none` stores them as they are).
# The default is gzip, which every engine and registry takes. zstd is
# smaller and faster, and podman 4.3 loads and pulls it, but Docker 20.10
# (Debian 12's docker.io) fails on zstd layers of more than a few MB,
# zstd(1)'s own output included ("archive/tar: invalid tar header" from
# its decoder, while zstd(1) and ruzstd decode them; docs/DESIGN.md
# "Image format") and
# umoci 0.4.7 refuses zstd layers: COMPRESS=zstd where only newer engines
# pull. The image id does not
# depend on it.
# A change of $COMPRESS rebuilds the image (COMPRESS.setting,
# default.setting.do).
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$1.layers" COMPRESS.setting
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
compress=${COMPRESS:-gzip}
[ "$compress" = none ] && compress= || compress="--compress=$compress"
dockpack image --tag "$name:latest" --iidfile "$out.iid" $compress "$@" >"$out"
mv "$out.iid" "$name.iid"
