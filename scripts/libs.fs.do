# libs/: simple/ plus the loader and every shared library its programs need,
# found by elfdeps (which reads the ELF files; it never runs them, as ldd
# does) and copied to the same absolute paths inside the tree.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
exec >&2
fs=${1%.fs}
redo-ifchange simple.fs
./need.sh elfdeps
rm -rf "$fs"
cp -a simple/. "$fs"
libs=$(find "$fs/bin" -type f | elfdeps)
for lib in $libs; do
	redo-ifchange "$lib"
	mkdir -p "$fs${lib%/*}"
	cp -L "$lib" "$fs$lib"
done
redo-ifchange "$fs/bin/sh"
