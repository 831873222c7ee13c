# debootstrap/: the packages installed. As root, debootstrap sets the real
# owners; as an ordinary user it runs under fakechroot and fakeroot, whose
# state file (debootstrap.fakeroot) the tools read with --fakeroot.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
exec >&2
fs=${1%.fs}
redo-ifchange debdownload.fs debootstrap.options fixtree.sh
./need.sh debootstrap
rm -rf "$fs" "$fs.fakeroot"
cp -a debdownload/. "$fs"
eatmydata=
command -v eatmydata >/dev/null 2>&1 && eatmydata=eatmydata
if [ "$(id -u)" = 0 ]; then
	$eatmydata debootstrap $(cat debootstrap.options) "$fs"
else
	./need.sh fakechroot fakeroot
	$eatmydata fakechroot fakeroot -s "$fs.fakeroot" \
		debootstrap $(cat debootstrap.options) "$fs"
fi
./fixtree.sh "$fs"
redo-ifchange "$fs/bin/sh"
