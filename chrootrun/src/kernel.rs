//! The privileged steps of container setup behind a small trait (youki's
//! style): [`Nix`] does them for real with nix and the new mount API; the
//! unit tests in `setup.rs` use a recorder that checks their order without
//! root.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::inroot::{self, Kind};

/// One operation each; every implementation reports errors that name the
/// step and the path.
pub trait Kernel {
    /// A detached mount (a cloned tree or a new proc) waiting to be attached.
    type Detached;
    fn set_hostname(&mut self, name: &OsStr) -> Result<()>;
    fn loopback_up(&mut self) -> Result<()>;
    /// `mount --make-rprivate /`.
    fn make_mounts_private(&mut self) -> Result<()>;
    /// `mount --rbind DIR DIR`.
    fn bind_onto_itself(&mut self, dir: &Path) -> Result<()>;
    /// A recursive clone of the host's `source`, read-only if asked.
    fn clone_tree(&mut self, source: &Path, readonly: bool) -> Result<(Self::Detached, Kind)>;
    /// A new proc for the current PID namespace.
    fn new_proc(&mut self) -> Result<Self::Detached>;
    /// Makes `dir` the root and detaches the old one.
    fn pivot_root(&mut self, dir: &Path) -> Result<()>;
    /// Finds or creates a mount point inside the (new) root.
    fn mount_point(&mut self, target: &Path, kind: Kind) -> Result<PathBuf>;
    fn attach(&mut self, mount: Self::Detached, target: &Path) -> Result<()>;
    fn mount_tmpfs(&mut self, target: &Path, flags: MsFlags) -> Result<()>;
    fn symlink(&mut self, dest: &str, link: &Path) -> Result<()>;
    fn remount_root_readonly(&mut self) -> Result<()>;
    fn chdir(&mut self, dir: &Path) -> Result<()>;
}

// The new mount API (Linux 5.2; mount_setattr 5.12). nix 0.32 has no
// wrappers; the constants are from include/uapi/linux/mount.h.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| anyhow!("{}: the path holds a NUL byte", p.display()))
}

fn owned_fd(ret: libc::c_long) -> nix::Result<OwnedFd> {
    let fd = Errno::result(ret)?;
    let fd = RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The real thing.
pub struct Nix;

impl Kernel for Nix {
    type Detached = OwnedFd;

    fn set_hostname(&mut self, name: &OsStr) -> Result<()> {
        nix::unistd::sethostname(name).context("setting the host name")
    }

    fn loopback_up(&mut self) -> Result<()> {
        // struct ifreq with the flags member (netdevice(7)); 40 bytes.
        #[repr(C)]
        struct IfReq {
            name: [u8; 16],
            flags: libc::c_short,
            pad: [u8; 22],
        }
        // SAFETY: plain socket(2); the result is checked and owned below.
        let sock = owned_fd(libc::c_long::from(unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        }))
        .context("bringing up lo: socket")?;
        let mut req = IfReq {
            name: [0; 16],
            flags: 0,
            pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        // SAFETY: req is a valid, properly sized struct ifreq for both ioctls.
        let got = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        Errno::result(got).context("bringing up lo: SIOCGIFFLAGS")?;
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        let set = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
        Errno::result(set).context("bringing up lo: SIOCSIFFLAGS")?;
        Ok(())
    }

    fn make_mounts_private(&mut self) -> Result<()> {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making the mounts private (mount --make-rprivate /)")
    }

    fn bind_onto_itself(&mut self, dir: &Path) -> Result<()> {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("binding {} onto itself", dir.display()))
    }

    fn clone_tree(&mut self, source: &Path, readonly: bool) -> Result<(OwnedFd, Kind)> {
        let c = cpath(source)?;
        // SAFETY: c is NUL-terminated; the new descriptor is owned below.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c.as_ptr(),
                OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
            )
        };
        let fd =
            owned_fd(ret).with_context(|| format!("cloning the mounts at {}", source.display()))?;
        if readonly {
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            // SAFETY: attr lives across the call and its size is passed.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_mount_setattr,
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                )
            };
            Errno::result(ret).with_context(|| format!("making {} read-only", source.display()))?;
        }
        let file = File::from(fd);
        let kind = match file.metadata() {
            Ok(md) if md.is_dir() => Kind::Dir,
            Ok(_) => Kind::File,
            Err(e) => return Err(e).with_context(|| format!("{}", source.display())),
        };
        Ok((OwnedFd::from(file), kind))
    }

    fn new_proc(&mut self) -> Result<OwnedFd> {
        let proc: &CStr = c"proc";
        // SAFETY: fsopen/fsconfig/fsmount with valid strings; fds owned below.
        let fs =
            owned_fd(unsafe { libc::syscall(libc::SYS_fsopen, proc.as_ptr(), FSOPEN_CLOEXEC) })
                .context("mounting proc: fsopen")?;
        // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        Errno::result(ret).context("mounting proc: fsconfig")?;
        // The flags match what the host's /proc has: a user namespace may
        // not mount a more permissive proc (mount_too_revealing in fs/namespace.c).
        let attrs = (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) as libc::c_uint;
        // SAFETY: as above.
        let mnt = owned_fd(unsafe {
            libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
        })
        .context("mounting proc: fsmount")?;
        Ok(mnt)
    }

    fn pivot_root(&mut self, dir: &Path) -> Result<()> {
        // pivot_root(2): "chdir(new_root); pivot_root(".", "."); umount2(".",
        // MNT_DETACH)" stacks the old root on the new one and detaches it,
        // with no directory needed inside DIR.
        nix::unistd::chdir(dir).with_context(|| format!("entering {}", dir.display()))?;
        nix::unistd::pivot_root(".", ".")
            .with_context(|| format!("pivot_root into {}", dir.display()))?;
        umount2(".", MntFlags::MNT_DETACH).context("detaching the old root")?;
        nix::unistd::chdir("/").context("entering the new root")?;
        Ok(())
    }

    fn mount_point(&mut self, target: &Path, kind: Kind) -> Result<PathBuf> {
        inroot::prepare(Path::new("/"), target, kind)
    }

    fn attach(&mut self, mount: OwnedFd, target: &Path) -> Result<()> {
        let to = cpath(target)?;
        // SAFETY: valid fd and strings.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mount.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        Errno::result(ret).with_context(|| format!("mounting on {}", target.display()))?;
        Ok(())
    }

    fn mount_tmpfs(&mut self, target: &Path, flags: MsFlags) -> Result<()> {
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            flags,
            Some("mode=0755"),
        )
        .with_context(|| format!("mounting a tmpfs on {}", target.display()))
    }

    fn symlink(&mut self, dest: &str, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(dest, link)
            .with_context(|| format!("creating {}", link.display()))
    }

    fn remount_root_readonly(&mut self) -> Result<()> {
        // A remount in a user namespace must keep the flags the mount was
        // locked with (nosuid, nodev, noexec), or it fails with EPERM.
        let st = nix::sys::statvfs::statvfs("/").context("statvfs /")?;
        use nix::sys::statvfs::FsFlags;
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        for (f, m) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if st.flags().contains(f) {
                flags |= m;
            }
        }
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context("making the root read-only")
    }

    fn chdir(&mut self, dir: &Path) -> Result<()> {
        nix::unistd::chdir(dir).with_context(|| format!("--cwd {}", dir.display()))
    }
}
