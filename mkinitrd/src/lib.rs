//! `mkinitrd`: turns a tree (names or list lines on stdin) into a newc cpio
//! archive the Linux kernel unpacks as an initramfs.
//!
//! [`newc`] is the archive writer, also used by `kvmrun` to append its
//! guest init as a second archive.

pub mod newc;
