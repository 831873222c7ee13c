#!/bin/sh
# usage: ./need.sh PROGRAM...
# Fails, naming every program that is not found, so a script stops with a
# clear message instead of a confusing error further on. Programs are
# looked up as path.sh arranges (PATH, then /usr/sbin, /sbin and
# ../target/release). A missing project tool gets the one message that
# says how to build it and put it on PATH.
. ./path.sh
tools=" fileids layerdiff elfdeps mkinitrd dockpack chrootrun kvmrun minredo "
missing= ours=
for prog in "$@"; do
	command -v "$prog" >/dev/null 2>&1 && continue
	missing="$missing $prog"
	case $tools in *" $prog "*) ours="$ours $prog" ;; esac
done
[ -z "$missing" ] && exit 0
if [ -n "$ours" ]; then
	up=$(cd .. && pwd -P)
	if [ -e "$up/Cargo.toml" ]; then
		# The cookbook in its repository: say exactly where.
		build="run 'cargo build --release' in $up (the cookbook then finds them in $up/target/release)"
		bin=$up/target/release
	else
		build="run 'cargo build --release' in the repository"
		bin=REPOSITORY/target/release
	fi
	echo "need.sh: missing:$missing: not on PATH nor in ../target/release;" \
		"$build, or put them on PATH: export PATH=\"$bin:\$PATH\"" >&2
else
	echo " -- missing:$missing" >&2
fi
exit 1
