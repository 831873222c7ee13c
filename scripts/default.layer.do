# NAME.layer: the files NAME.list names, as one uncompressed layer tar.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$2.fs" "$2.list"
./need.sh dockpack
if [ -e "$2.fakeroot" ]; then
	redo-ifchange "$2.fakeroot"
else
	redo-ifcreate "$2.fakeroot"
fi
dockpack layer -C "$2" $(./owner.sh "$2") <"$2.list"
