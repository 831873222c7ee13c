# debdownload/: the packages debootstrap.options asks for, downloaded once.
# Not deleted on rebuild: packages already there are not fetched again.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
exec >&2
fs=${1%.fs}
redo-ifchange debootstrap.options
./need.sh debootstrap
mkdir -p "$fs"
if [ "$(id -u)" = 0 ]; then
	debootstrap --download-only --keep-debootstrap-dir \
		$(cat debootstrap.options) "$fs"
else
	./need.sh fakeroot
	fakeroot debootstrap --download-only --keep-debootstrap-dir \
		$(cat debootstrap.options) "$fs"
fi
redo-ifchange "$fs/debootstrap/debootstrap.log"
