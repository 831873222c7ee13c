# NAME.initrd: the whole NAME/ tree as a newc cpio for the kernel.
# kvmrun appends its own init, so no rdinit script is needed.
redo-ifchange "$2.fs"
./need.sh mkinitrd
if [ -e "$2.fakeroot" ]; then
	redo-ifchange "$2.fakeroot"
else
	redo-ifcreate "$2.fakeroot"
fi
(cd "$2" && find . -print) | LC_ALL=C sort | mkinitrd -C "$2" $(./owner.sh "$2")
