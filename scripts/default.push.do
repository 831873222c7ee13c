# NAME.push: NAME.image pushed with skopeo to $REGISTRY, as
# $REGISTRY/NAME:latest (REGISTRY=HOST[:PORT][/PATH], e.g.
# registry.example:5000/team). The product is the digest of the manifest
# pushed (`skopeo copy --digestfile`), so a target that needs the image
# in the registry depends on NAME.push and can pull it by that digest:
# $REGISTRY/NAME@$(cat NAME.push).
# PUSH_FLAGS adds skopeo copy options (e.g. --dest-tls-verify=false for a
# registry without TLS, --dest-creds USER:PASSWORD).
# The image is pushed from its OCI face (`oci-archive:`) with
# --preserve-digests, so the registry holds our blobs and manifest byte
# for byte: from `docker-archive:` skopeo decompresses the layers and
# pushes a gzip of its own, and without --preserve-digests it may swap in
# a blob the registry already has for the same layer in another
# compression (docs/DESIGN.md "Image format").
# A change of $REGISTRY pushes again (REGISTRY.setting,
# default.setting.do); one of $PUSH_FLAGS does not, as it may hold a
# password that no file should.
. ./path.sh
if [ -z "${REGISTRY:-}" ]; then
	echo "$1: REGISTRY is not set: say where to push, e.g." \
		"REGISTRY=registry.example:5000/team (and PUSH_FLAGS=--dest-tls-verify=false" \
		"for a registry without TLS)" >&2
	exit 1
fi
./need.sh skopeo
redo-ifchange "$2.image" REGISTRY.setting
# PUSH_FLAGS is split into words on purpose.
# shellcheck disable=SC2086
skopeo copy -q --preserve-digests ${PUSH_FLAGS:-} --digestfile "$3" \
	"oci-archive:$2.image" "docker://$REGISTRY/$2:latest" >&2
echo "push: $REGISTRY/$2@$(cat "$3")" >&2
