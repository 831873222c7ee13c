# Removes everything the build made, the Debian trees and the kernel included.
exec >&2
redo clean
rm -rf debdownload debootstrap debootstrap.fakeroot debdownload.fs debootstrap.fs kernel
