//! The privileged steps of container setup behind a small trait (youki's
//! style): [`Nix`] does them for real with rustix/nix and the new mount API
//! (open_tree, move_mount, fsopen/fsmount, mount_setattr: mount_setattr(2),
//! open_tree(2), move_mount(2)); the unit tests in `setup.rs` use a
//! recorder that checks their order without root.
//!
//! Every mount is made detached first and attached by descriptor, so no
//! step re-walks a host path that someone could have swapped meanwhile.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_fd, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    move_mount, open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    OpenTreeFlags,
};

use crate::inroot::{self, Kind};

/// How a path of the container's /proc is protected (the OCI runtime
/// spec's defaults, config-linux.md "maskedPaths" and "readonlyPaths",
/// which runc and crun apply).
#[derive(Debug)]
pub enum Protect<D> {
    /// Bound onto itself read-only.
    ReadOnly,
    /// A file hidden under this clone of /dev/null.
    MaskFile(D),
    /// A directory hidden under an empty read-only tmpfs.
    MaskDir,
}

/// One operation each; every implementation reports errors that name the
/// step and the path.
pub trait Kernel {
    /// A detached mount (a cloned tree, a new proc or overlay) waiting to
    /// be attached.
    type Detached;
    /// setresuid/setresgid to the namespace's root (and no supplementary
    /// groups), once the parent wrote the id maps.
    fn become_root(&mut self) -> Result<()>;
    /// `setsid()`: a session of its own, without a controlling terminal.
    fn new_session(&mut self) -> Result<()>;
    fn set_hostname(&mut self, name: &OsStr) -> Result<()>;
    fn loopback_up(&mut self) -> Result<()>;
    /// `mount --make-rprivate /`.
    fn make_mounts_private(&mut self) -> Result<()>;
    /// A clone of the tree at the working directory: DIR, entered through
    /// its descriptor before the mount namespace was copied (copy_mnt_ns
    /// moves a task's cwd to the copy), so no path names it again.
    fn clone_cwd(&mut self, attrs: MountAttrFlags) -> Result<Self::Detached>;
    /// A recursive clone of the host's `source` with `attrs` set on every
    /// mount in it.
    fn clone_tree(
        &mut self,
        source: &Path,
        attrs: MountAttrFlags,
    ) -> Result<(Self::Detached, Kind)>;
    /// A new proc for the current PID namespace.
    fn new_proc(&mut self) -> Result<Self::Detached>;
    /// An overlay whose only lower layer is `lower` and whose upper layer
    /// is a fresh tmpfs: writes, and the mount points DIR lacks, land there.
    fn overlay(&mut self, lower: Self::Detached) -> Result<Self::Detached>;
    /// Attaches `root` on the working directory, enters it, makes it the
    /// root (`pivot_root(".", ".")`) and detaches the old root.
    fn pivot_into(&mut self, root: Self::Detached) -> Result<()>;
    /// Finds, or where `create` creates, a mount point inside the (new) root.
    fn mount_point(&mut self, target: &Path, kind: Kind, create: bool) -> Result<PathBuf>;
    fn attach(&mut self, mount: Self::Detached, target: &Path) -> Result<()>;
    fn mount_tmpfs(&mut self, target: &Path, attrs: MountAttrFlags) -> Result<()>;
    fn symlink(&mut self, dest: &str, link: &Path) -> Result<()>;
    /// Protects `path` if it exists; `false` if it does not.
    fn protect(&mut self, path: &Path, how: Protect<Self::Detached>) -> Result<bool>;
    /// Makes the mount at `target` (not its submounts) read-only.
    fn set_readonly(&mut self, target: &Path) -> Result<()>;
    fn chdir(&mut self, dir: &Path) -> Result<()>;
}

/// The parent's privileged steps for a root caller, in the host's user
/// namespace: only there is CAP_SYS_ADMIN over the host's filesystems,
/// which idmapped mounts need. The real one is in `supervise.rs`.
pub trait Host {
    /// A detached mount, sent to the child.
    type Mount;
    /// Opens the child's user namespace, whose id map the idmaps use.
    fn open_userns(&mut self) -> Result<()>;
    /// DIR, by its descriptor, without its submounts, idmapped.
    fn clone_dir(&mut self, attrs: MountAttrFlags) -> Result<Self::Mount>;
    /// A bind source, opened once by its canonical name, with its
    /// submounts; idmapped when `idmap`. `shown` names it in messages.
    fn clone_source(
        &mut self,
        source: &Path,
        shown: &str,
        idmap: bool,
        attrs: MountAttrFlags,
    ) -> Result<Self::Mount>;
}

/// The kernel's `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` (Linux 5.12): neither nix 0.32 nor rustix 1.1 wraps it.
pub fn mount_setattr(
    dfd: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    recursive: bool,
    set: MountAttrFlags,
    userns: Option<BorrowedFd<'_>>,
) -> nix::Result<()> {
    let mut attr = MountAttr {
        attr_set: u64::from(set.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    if let Some(u) = userns {
        attr.attr_set |= u64::from(MountAttrFlags::MOUNT_ATTR_IDMAP.bits());
        attr.userns_fd = u.as_raw_fd() as u64;
    }
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: path is a NUL-terminated CStr, attr is a #[repr(C)] struct
    // mount_attr that lives across the call and its size is passed (the
    // kernel's extensible-struct rule); the kernel only reads both, and
    // dfd is a borrowed, open descriptor.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dfd.as_raw_fd(),
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Clones the mount tree at `dfd` (a descriptor of DIR or of a bind
/// source) and, given `userns`, presents it through that namespace's id
/// map: the host-side step for a root caller, which alone holds
/// CAP_SYS_ADMIN over the host's filesystems (idmapped mounts need it in
/// the filesystem's user namespace).
/// `recursive` takes the submounts along (a bind source's); DIR's own
/// are left out, so one that cannot be idmapped (a proc, a devtmpfs) does
/// not stop the run, and the overlay uses only the top mount anyway.
pub fn idmapped_clone(
    dfd: BorrowedFd<'_>,
    userns: Option<BorrowedFd<'_>>,
    attrs: MountAttrFlags,
    recursive: bool,
) -> std::result::Result<OwnedFd, (&'static str, Errno)> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let fd =
        open_tree(dfd, "", flags).map_err(|e| ("open_tree", Errno::from_raw(e.raw_os_error())))?;
    let step = if userns.is_some() {
        "mount_setattr(MOUNT_ATTR_IDMAP)"
    } else {
        "mount_setattr"
    };
    mount_setattr(fd.as_fd(), c"", recursive, attrs, userns).map_err(|e| (step, e))?;
    Ok(fd)
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

fn tmpfs(attrs: MountAttrFlags, mode: &str) -> rustix::io::Result<OwnedFd> {
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(fs.as_fd(), "mode", mode)?;
    fsconfig_create(fs.as_fd())?;
    fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
}

/// The real thing.
pub struct Nix;

impl Kernel for Nix {
    type Detached = OwnedFd;

    fn become_root(&mut self) -> Result<()> {
        // setgroups is denied (and needless) for an ordinary caller.
        let _ = nix::unistd::setgroups(&[]);
        let g = nix::unistd::Gid::from_raw(0);
        let u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(g, g, g)
            .and_then(|()| nix::unistd::setresuid(u, u, u))
            .context("becoming root in the user namespace")
    }

    fn new_session(&mut self) -> Result<()> {
        nix::unistd::setsid().map(drop).context("setsid")
    }

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
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("bringing up lo: socket")?;
        let mut req = IfReq {
            name: [0; 16],
            flags: 0,
            pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        // SAFETY: req is a #[repr(C)] struct ifreq of the kernel's size (a
        // 16-byte NUL-terminated name, then the flags in a 24-byte union),
        // valid for SIOCGIFFLAGS to write and SIOCSIFFLAGS to read; neither
        // nix nor rustix wraps these two ioctls.
        let got = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        Errno::result(got).context("bringing up lo: SIOCGIFFLAGS")?;
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        let set = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
        Errno::result(set).context("bringing up lo: SIOCSIFFLAGS")?;
        Ok(())
    }

    fn make_mounts_private(&mut self) -> Result<()> {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making the mounts private (mount --make-rprivate /)")
    }

    fn clone_cwd(&mut self, attrs: MountAttrFlags) -> Result<OwnedFd> {
        let fd = open_tree(
            CWD,
            ".",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(errno)
        .context("cloning the container's tree")?;
        mount_setattr(fd.as_fd(), c"", true, attrs, None)
            .context("setting the container tree's mount flags")?;
        Ok(fd)
    }

    fn clone_tree(&mut self, source: &Path, attrs: MountAttrFlags) -> Result<(OwnedFd, Kind)> {
        let fd = open_tree(
            CWD,
            source,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(errno)
        .with_context(|| format!("cloning the mounts at {}", source.display()))?;
        if !attrs.is_empty() {
            mount_setattr(fd.as_fd(), c"", true, attrs, None)
                .with_context(|| format!("setting the mount flags of {}", source.display()))?;
        }
        let file = File::from(fd);
        let kind = match file.metadata() {
            Ok(md) if md.is_dir() => Kind::Dir,
            Ok(_) => Kind::File,
            Err(e) => return Err(crate::os(e)).with_context(|| format!("{}", source.display())),
        };
        Ok((OwnedFd::from(file), kind))
    }

    fn new_proc(&mut self) -> Result<OwnedFd> {
        let fs = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(errno)
            .context("mounting proc: fsopen")?;
        fsconfig_create(fs.as_fd())
            .map_err(errno)
            .context("mounting proc: fsconfig")?;
        // The flags match what the host's /proc has: a user namespace may
        // not mount a more permissive proc (mount_too_revealing in fs/namespace.c).
        let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(errno)
            .context("mounting proc: fsmount")
    }

    fn overlay(&mut self, lower: OwnedFd) -> Result<OwnedFd> {
        // overlayfs takes a private clone of each layer, which the kernel
        // allows only of a mount in our own namespace (clone_private_mount:
        // a root caller's idmapped clone still belongs to the host's user
        // namespace while detached). So the lower layer is attached on the
        // cwd first; the overlay is stacked on top of it in pivot_into.
        move_mount(
            &lower,
            "",
            CWD,
            ".",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(errno)
        .context("mounting the container's tree")?;
        let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
        let t = tmpfs(attrs, "0755")
            .map_err(errno)
            .context("mounting the overlay's tmpfs")?;
        // The overlay's root takes its mode from the upper directory
        // (Documentation/filesystems/overlayfs.rst), so give it DIR's.
        let mode = rustix::fs::fstat(&lower)
            .map(|st| Mode::from_raw_mode(st.st_mode & 0o7777))
            .unwrap_or(Mode::from_raw_mode(0o755));
        let layer = |name: &str, mode: Mode| -> Result<OwnedFd> {
            rustix::fs::mkdirat(&t, name, mode)
                .map_err(errno)
                .with_context(|| format!("creating the overlay's {name} directory"))?;
            rustix::fs::openat(
                &t,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)
            .with_context(|| format!("opening the overlay's {name} directory"))
        };
        let upper = layer("upper", mode)?;
        let work = layer("work", Mode::from_raw_mode(0o700))?;
        let ov = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(errno)
            .context("mounting the overlay: fsopen (is overlayfs available?)")?;
        // Layers by descriptor ("lowerdir+", "upperdir", "workdir" take an
        // fd since Linux 6.13); older kernels get the descriptor's
        // /proc/self/fd name, which still resolves to the detached mount.
        let by_fd = fsconfig_set_fd(ov.as_fd(), "lowerdir+", &lower).is_ok();
        let set = |key: &str, fd: &OwnedFd| -> rustix::io::Result<()> {
            if by_fd {
                fsconfig_set_fd(ov.as_fd(), key, fd)
            } else {
                let key = if key == "lowerdir+" { "lowerdir" } else { key };
                fsconfig_set_string(ov.as_fd(), key, format!("/proc/self/fd/{}", fd.as_raw_fd()))
            }
        };
        if !by_fd {
            set("lowerdir+", &lower)
                .map_err(errno)
                .context("mounting the overlay: lowerdir")?;
        }
        set("upperdir", &upper)
            .map_err(errno)
            .context("mounting the overlay: upperdir")?;
        set("workdir", &work)
            .map_err(errno)
            .context("mounting the overlay: workdir")?;
        // In a user namespace overlayfs keeps its metadata in user.*
        // xattrs instead of trusted.* (overlayfs.rst, "userxattr").
        fsconfig_set_flag(ov.as_fd(), "userxattr")
            .map_err(errno)
            .context("mounting the overlay: userxattr")?;
        fsconfig_create(ov.as_fd())
            .map_err(errno)
            .context(
                "mounting the overlay over DIR (if its filesystem cannot be an overlay's lower layer, --rw runs on DIR itself)",
            )?;
        fsmount(ov.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(errno)
            .context("mounting the overlay: fsmount")
    }

    fn pivot_into(&mut self, root: OwnedFd) -> Result<()> {
        move_mount(&root, "", CWD, ".", MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .map_err(errno)
            .context("mounting the container's root")?;
        rustix::process::fchdir(&root)
            .map_err(errno)
            .context("entering the container's root")?;
        // pivot_root(2): "pivot_root(".", "."); umount2(".", MNT_DETACH)"
        // stacks the old root on the new one and detaches it, with no
        // directory needed inside DIR.
        rustix::process::pivot_root(".", ".")
            .map_err(errno)
            .context("pivot_root into the container")?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .context("detaching the old root")?;
        nix::unistd::chdir("/").context("entering the new root")?;
        Ok(())
    }

    fn mount_point(&mut self, target: &Path, kind: Kind, create: bool) -> Result<PathBuf> {
        inroot::prepare(Path::new("/"), target, kind, create)
    }

    fn attach(&mut self, mount: OwnedFd, target: &Path) -> Result<()> {
        move_mount(
            &mount,
            "",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(errno)
        .with_context(|| format!("mounting on {}", target.display()))
    }

    fn mount_tmpfs(&mut self, target: &Path, attrs: MountAttrFlags) -> Result<()> {
        let t = tmpfs(attrs, "0755")
            .map_err(errno)
            .with_context(|| format!("mounting a tmpfs on {}", target.display()))?;
        self.attach(t, target)
    }

    fn symlink(&mut self, dest: &str, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(dest, link)
            .map_err(crate::os)
            .with_context(|| format!("creating {}", link.display()))
    }

    fn protect(&mut self, path: &Path, how: Protect<OwnedFd>) -> Result<bool> {
        let locked = MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(crate::os(e)).with_context(|| format!("protecting {}", path.display()))
            }
        };
        let mount = match how {
            Protect::ReadOnly => {
                let fd = open_tree(
                    CWD,
                    path,
                    OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_RECURSIVE
                        | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(errno)
                .with_context(|| format!("making {} read-only", path.display()))?;
                mount_setattr(fd.as_fd(), c"", true, locked, None)
                    .with_context(|| format!("making {} read-only", path.display()))?;
                fd
            }
            Protect::MaskFile(null) => {
                if md.is_dir() {
                    tmpfs(locked, "0555")
                        .map_err(errno)
                        .with_context(|| format!("masking {}", path.display()))?
                } else {
                    null
                }
            }
            Protect::MaskDir => tmpfs(locked, "0555")
                .map_err(errno)
                .with_context(|| format!("masking {}", path.display()))?,
        };
        self.attach(mount, path)?;
        Ok(true)
    }

    fn set_readonly(&mut self, target: &Path) -> Result<()> {
        let c = std::ffi::CString::new(target.as_os_str().as_bytes())
            .map_err(|_| anyhow!("{}: the path holds a NUL byte", target.display()))?;
        mount_setattr(CWD, &c, false, MountAttrFlags::MOUNT_ATTR_RDONLY, None)
            .with_context(|| format!("making {} read-only", target.display()))
    }

    fn chdir(&mut self, dir: &Path) -> Result<()> {
        nix::unistd::chdir(dir).with_context(|| format!("--cwd {}", dir.display()))
    }
}

/// An owned fd from a raw one the kernel just returned.
pub fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just gave them and that
    // nothing else owns (received by SCM_RIGHTS).
    unsafe { OwnedFd::from_raw_fd(fd) }
}
