#!/bin/sh
# usage: ./fixtree.sh DIR
# Makes a freshly debootstrapped tree self-contained:
#  - drops the downloaded packages and index files (the seed does too);
#  - under fakechroot, debootstrap leaves ~50 absolute symlinks pointing at
#    DIR's path on the host (lib64/ld-linux-x86-64.so.2 -> /home/u/.../DIR/
#    lib/...); make them point inside the tree, so it runs anywhere;
#  - where DIR.fakeroot exists, records every inode fakeroot never saved as
#    root's (fakeroot shows an unknown inode as 0:0, but its -s file lists
#    only the inodes it faked), so readers of the state see what fakeroot saw.
set -e
fs=$1
state=$fs.fakeroot
abs=$(cd "$fs" && pwd -P)
if [ -e "$state" ]; then
	fr="fakeroot -i $state -s $state"
else
	fr=
fi
$fr sh -ec '
	fs=$1 abs=$2
	rm -f "$fs"/var/cache/apt/archives/*.deb \
		"$fs"/var/cache/apt/*.bin \
		"$fs"/var/lib/apt/lists/*Packages \
		"$fs"/var/lib/apt/lists/*Sources \
		"$fs"/var/lib/apt/lists/debootstrap*
	find "$fs" -type l | while IFS= read -r link; do
		target=$(readlink "$link")
		case $target in
		"$abs"/*)
			ln -sfn "${target#"$abs"}" "$link"
			chown -h 0:0 "$link" ;;
		esac
	done
' sh "$fs" "$abs"
if [ -e "$state" ]; then
	dev=$(printf %x "$(stat -c %d "$fs")")
	find "$fs" -printf '%i %p\n' |
	awk -v dev="$dev" '
		FNR == NR {
			split($0, f, ","); d = ""; i = ""
			for (k in f) {
				if (f[k] ~ /^dev=/) d = substr(f[k], 5)
				if (f[k] ~ /^ino=/) i = substr(f[k], 5)
			}
			if (d == dev) known[i] = 1
			next
		}
		!($1 in known) { sub(/^[0-9]+ /, ""); print }
	' "$state" - |
	$fr xargs -r -d '\n' chown -h 0:0
fi
