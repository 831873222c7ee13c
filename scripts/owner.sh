#!/bin/sh
# usage: ./owner.sh NAME
# Prints the ownership options for fileids, mkinitrd and dockpack layer
# when they read the tree NAME/:
#  - NAME.fakeroot exists (the tree was made under `fakeroot -s` by an
#    ordinary user): take owners, modes and device numbers from it;
#  - we are root: the files' real owners (debootstrap set them; everything
#    else root made is root's);
#  - an ordinary user without a state file: --owner 0:0, as fakeroot would
#    have shown it (the seed's lists are all 0-0).
# The .do files declare the dependency on NAME.fakeroot themselves.
if [ -e "$1.fakeroot" ]; then
	echo "--fakeroot $1.fakeroot"
elif [ "$(id -u)" != 0 ]; then
	echo "--owner 0:0"
fi
