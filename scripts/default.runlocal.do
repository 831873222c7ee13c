# NAME.runlocal: what NAME/init prints, run in a user-namespace chroot.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$2.fs"
./need.sh chrootrun
chrootrun "$2"
