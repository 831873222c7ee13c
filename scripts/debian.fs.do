# debian/: the debootstrap tree plus the "application": an /init script that
# counts the installed packages. Its layer (debian.diffbase) holds only that.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
exec >&2
fs=${1%.fs}
redo-ifchange debootstrap.fs
rm -rf "$fs" "$fs.fakeroot"
init='#!/bin/sh
dpkg -l | wc -l'
if [ -e debootstrap.fakeroot ]; then
	redo-ifchange debootstrap.fakeroot
	./need.sh fakeroot
	fakeroot -i debootstrap.fakeroot -s "$fs.fakeroot" sh -ec '
		cp -a debootstrap/. "$1"
		printf "%s\n" "$2" >"$1/init"
		chmod 755 "$1/init"
		chown 0:0 "$1/init"
	' sh "$fs" "$init"
else
	redo-ifcreate debootstrap.fakeroot
	cp -a debootstrap/. "$fs"
	printf '%s\n' "$init" >"$fs/init"
	chmod 755 "$fs/init"
fi
redo-ifchange "$fs/bin/sh"
