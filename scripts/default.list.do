# NAME.list: every file of NAME/ with its identity (fileids), minus what the
# layer below already has (layerdiff against the .diffbase's list; a tree
# without one is diffed against /dev/null, i.e. listed whole).
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$2.fs"
./need.sh fileids layerdiff
if [ -e "$2.diffbase" ]; then
	redo-ifchange "$2.diffbase"
	read -r base <"$2.diffbase"
	redo-ifchange "$base.list"
	base=$base.list
else
	redo-ifcreate "$2.diffbase"
	base=/dev/null
fi
if [ -e "$2.fakeroot" ]; then
	redo-ifchange "$2.fakeroot"
else
	redo-ifcreate "$2.fakeroot"
fi
trap 'rm -f "$3.all"' EXIT
# fileids is the last command of the pipeline, so its status is checked;
# the whole list goes to a file so a failure cannot pass a short list on.
(cd "$2" && find . -print) | LC_ALL=C sort | fileids -C "$2" $(./owner.sh "$2") >"$3.all"
layerdiff --whiteouts "$base" "$3.all" >"$3"
