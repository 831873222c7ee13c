# NAME.initrd: the whole NAME/ tree as a newc cpio for the kernel.
# kvmrun appends its own init, so no rdinit script is needed.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$2.fs"
./need.sh mkinitrd
if [ -e "$2.fakeroot" ]; then
	redo-ifchange "$2.fakeroot"
else
	redo-ifcreate "$2.fakeroot"
fi
(cd "$2" && find . -print) | LC_ALL=C sort | mkinitrd -C "$2" $(./owner.sh "$2")
