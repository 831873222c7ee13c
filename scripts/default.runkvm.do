# NAME.runkvm: what NAME/init prints, run in a virtual machine.
redo-ifchange "$2.initrd"
./need.sh kvmrun
kvmrun ${KVMRUN_FLAGS:-} "$2.initrd"
