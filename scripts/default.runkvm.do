# NAME.runkvm: what NAME/init prints, run in a virtual machine.
# PATH as need.sh sees it (path.sh: ../target/release, /usr/sbin, /sbin).
. ./path.sh
redo-ifchange "$2.initrd"
./need.sh kvmrun
# The cookbook's kernel (`redo kernel`, `make kernel`: about 6 minutes to
# build, so not built here) boots in about a second under software
# emulation; where it has been built it is kept up to date and booted,
# unless KVMRUN_KERNEL names another. Else kvmrun boots the host's.
if [ -e kernel ]; then
	redo-ifchange kernel
	KVMRUN_KERNEL=${KVMRUN_KERNEL:-$PWD/kernel}
	export KVMRUN_KERNEL
else
	redo-ifcreate kernel
fi
kvmrun ${KVMRUN_FLAGS:-} "$2.initrd"
