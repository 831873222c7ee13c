# NAME.runlocal: what NAME/init prints, run in a user-namespace chroot.
redo-ifchange "$2.fs"
./need.sh chrootrun
chrootrun "$2"
