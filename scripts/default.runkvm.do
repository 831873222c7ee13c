# NAME.runkvm: what NAME/init prints, run in a virtual machine.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$2.initrd"
./need.sh kvmrun
kvmrun ${KVMRUN_FLAGS:-} "$2.initrd"
