# simple/: hello, a shell, busybox where the host has it, /init -> bin/hello.
# The tree is a side product; simple.fs is the node others depend on.
exec >&2
fs=${1%.fs}
redo-ifchange hello /bin/sh
files="hello /bin/sh"
if [ -x /bin/busybox ]; then
	redo-ifchange /bin/busybox
	files="$files /bin/busybox"
else
	redo-ifcreate /bin/busybox
fi
rm -rf "$fs"
mkdir -p "$fs/bin"
# -L: /bin/sh is a symlink to dash on Debian; we want the program.
cp -L $files "$fs/bin/"
ln -s bin/hello "$fs/init"
redo-ifchange "$fs/bin/sh"
