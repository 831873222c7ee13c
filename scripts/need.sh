#!/bin/sh
# usage: ./need.sh PROGRAM...
# Fails, naming every program that is not on PATH, so a script stops with
# a clear message instead of a confusing error further on.
missing=
for prog in "$@"; do
	command -v "$prog" >/dev/null 2>&1 || missing="$missing $prog"
done
if [ -n "$missing" ]; then
	echo " -- missing:$missing" >&2
	exit 1
fi
