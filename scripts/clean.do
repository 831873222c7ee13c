# Removes what the build made, except the Debian download and install and
# the cookbook's kernel (slow to make; debdownload.fs and debootstrap.fs
# rebuild them when their
# inputs change). `redo xclean` removes those too.
exec >&2
rm -rf simple libs debian debian.fakeroot hello \
	simple.fs libs.fs debian.fs \
	*.list *.list.all *.layer *.image *.iid *.initrd *.gz \
	*.runlocal *.runkvm *.rundocker *.load *.push *.sha256 *.setting *.tmp \
	*.make-tmp .*.make-out *.redo-tmp .*.redo-out
