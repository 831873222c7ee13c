//! The container's mount namespace, step by step. The order is the point,
//! and is unit-tested against a recording kernel:
//!
//! | step | why |
//! |---|---|
//! | (parent) write the id maps; for a root caller clone DIR and the bind sources and idmap them | idmapped mounts need CAP_SYS_ADMIN over the host's filesystem, which only the parent has |
//! | become root, setsid | the maps exist now; no controlling terminal (TIOCSTI) |
//! | hostname, loopback | their namespaces are already new (clone flags) |
//! | make every mount private | a copied namespace keeps shared peers; without this our mounts (and the old root's unmount) would propagate to the host (mount_namespaces(7)) |
//! | clone DIR from the cwd (or take the parent's idmapped clone) | DIR was opened once, `O_PATH\|O_DIRECTORY\|O_NOFOLLOW`, and entered by `fchdir`; nothing resolves its path again, so swapping it for a symlink changes nothing |
//! | clone bind sources and /dev nodes, make proc | sources are host paths, and a user namespace may mount proc only while a full proc is visible (mount_too_revealing) — both need the old root |
//! | overlay DIR under a tmpfs (unless --rw) | mount points DIR lacks and the program's writes land in the tmpfs: DIR is never written |
//! | attach the root on the cwd, pivot_root, detach the old root | from here no path leads to the host: the classic `chroot` escape finds nothing |
//! | attach mounts, parents first | mount points are found inside the new root (inroot.rs) |
//! | protect /proc | the OCI runtime spec's masked and read-only paths, after proc is attached |
//! | --ro | last, so missing mount points could still be created |
//! | chdir --cwd | resolved inside the new root |
//!
//! None of these mounts is made in a more privileged user namespace than
//! the program's, so the kernel does not lock them by itself; the program
//! loses CAP_SYS_ADMIN instead (caps.rs), so it can neither unmount nor
//! change them, and any user namespace it makes sees them locked
//! (mount_namespaces(7), "restrictions on mount namespaces").

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rustix::mount::MountAttrFlags;

use crate::inroot::Kind;
use crate::kernel::{Host, Kernel, Protect};

/// What the child sets up before it runs the command.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sorted parents first (see [`sort_mounts`]).
    pub mounts: Vec<Mount>,
    pub readonly_root: bool,
    /// --rw: DIR itself is the root, so writes persist and missing mount
    /// points are an error; otherwise an overlay over DIR is.
    pub rw: bool,
    pub hostname: Option<OsString>,
    pub loopback: bool,
    pub cwd: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Proc,
    Dev,
    Tmpfs(PathBuf),
    Bind {
        /// Canonical, for opening.
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
        /// The option as the user typed it, for messages (`--bind "SRC"`).
        shown: String,
    },
}

impl Mount {
    pub fn target(&self) -> &Path {
        match self {
            Mount::Proc => Path::new("/proc"),
            Mount::Dev => Path::new("/dev"),
            Mount::Tmpfs(t) => t,
            Mount::Bind { target, .. } => target,
        }
    }
}

/// Orders mounts by the depth of their target, keeping the command-line
/// order among equals, so `--tmpfs /a --bind x:/a/b` and `--bind x:/a/b
/// --tmpfs /a` both mount /a first.
pub fn sort_mounts(mounts: &mut [Mount]) {
    mounts.sort_by_key(|m| {
        m.target()
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count()
    });
}

/// Host device nodes bound into `--dev`'s tmpfs (bubblewrap's list).
pub const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// Symlinks in `--dev`'s tmpfs.
pub const DEV_LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// The OCI runtime spec's default read-only paths under /proc.
pub const PROC_READONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Its default masked files under /proc (hidden under /dev/null).
pub const PROC_MASKED_FILES: [&str; 4] = ["kcore", "keys", "timer_list", "sched_debug"];
/// Its default masked directories under /proc (hidden under an empty
/// read-only tmpfs). The spec's /sys/firmware does not apply: chrootrun
/// mounts no sysfs.
pub const PROC_MASKED_DIRS: [&str; 2] = ["acpi", "scsi"];

/// Every mount chrootrun makes is nosuid and nodev: a setuid file in DIR
/// or a bind gives the program nothing, nor does a device node.
pub fn safe() -> MountAttrFlags {
    MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV
}

/// Mounts the parent made for a root caller (idmapped, which needs
/// CAP_SYS_ADMIN over the host's filesystem): DIR, then one per `--bind`
/// and `--ro-bind`, in [`Plan::mounts`] order.
pub struct Given<D> {
    pub root: D,
    pub binds: Vec<(D, Kind)>,
}

/// The parent's half for a root caller: DIR and the bind sources cloned
/// in the host's namespaces and sent to the child. DIR and `--ro-bind`
/// sources are idmapped through the container's user namespace, so they
/// show their on-disk owners. A `--bind` source is not: the files the
/// program creates there are owned on disk by its remapped ids (Docker's
/// userns-remap), and the host's root stays outside its ids. Any id map
/// that showed root's files as some container id would let the program
/// `chown` a file to that id and `chmod 6755` it, a setuid-root file on
/// the host, since CAP_CHOWN and CAP_SETUID reach every mapped id
/// (capable_wrt_inode_uidgid in kernel/capability.c); podman's idmapped
/// volumes allow exactly that.
pub fn host<H: Host>(h: &mut H, plan: &Plan) -> Result<(H::Mount, Vec<H::Mount>)> {
    h.open_userns()?;
    // Read-only under the overlay: DIR cannot be written through it.
    let ro = if plan.rw {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let root = h.clone_dir(safe() | ro)?;
    let mut binds = Vec::new();
    for m in &plan.mounts {
        if let Mount::Bind {
            source,
            readonly,
            shown,
            ..
        } = m
        {
            binds.push(if *readonly {
                h.clone_source(
                    source,
                    shown,
                    true,
                    safe() | MountAttrFlags::MOUNT_ATTR_RDONLY,
                )?
            } else {
                h.clone_source(source, shown, false, safe())?
            });
        }
    }
    Ok((root, binds))
}

enum Ready<D> {
    Attach {
        mount: D,
        target: PathBuf,
        kind: Kind,
    },
    Proc {
        proc: D,
        nulls: Vec<D>,
    },
    Tmpfs(PathBuf),
    Dev(Vec<(D, &'static str)>),
}

/// Runs the plan.
pub fn run<K: Kernel>(k: &mut K, plan: &Plan, given: Option<Given<K::Detached>>) -> Result<()> {
    // Until now a root caller's child still has the host's uid 0 and gid
    // 0, which its id map does not hold: the kernel would refuse to create
    // a file owned by them (EOVERFLOW), and the supplementary groups would
    // be the host's.
    k.become_root()?;
    // A session of its own: no controlling terminal, so TIOCSTI cannot
    // push input into the caller's shell (CVE-2017-5226, bwrap's
    // --new-session); tty_ioctl(4) allows it only on one's controlling tty.
    k.new_session()?;
    if let Some(name) = &plan.hostname {
        k.set_hostname(name)?;
    }
    if plan.loopback {
        k.loopback_up()?;
    }
    k.make_mounts_private()?;
    let (root, mut binds) = match given {
        Some(g) => (g.root, Some(g.binds.into_iter())),
        None => {
            // The overlay's lower layer is read-only: DIR cannot be written
            // through it even by a bug of ours.
            let ro = if plan.rw {
                MountAttrFlags::empty()
            } else {
                MountAttrFlags::MOUNT_ATTR_RDONLY
            };
            (k.clone_cwd(safe() | ro)?, None)
        }
    };
    let mut ready = Vec::new();
    for m in &plan.mounts {
        ready.push(match m {
            Mount::Proc => {
                let mut nulls = Vec::new();
                for _ in PROC_MASKED_FILES {
                    let (d, _) = k.clone_tree(
                        Path::new("/dev/null"),
                        MountAttrFlags::MOUNT_ATTR_RDONLY
                            | MountAttrFlags::MOUNT_ATTR_NOSUID
                            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
                    )?;
                    nulls.push(d);
                }
                Ready::Proc {
                    proc: k.new_proc()?,
                    nulls,
                }
            }
            Mount::Dev => {
                let mut nodes = Vec::new();
                for n in DEV_NODES {
                    let (d, _) = k.clone_tree(
                        &Path::new("/dev").join(n),
                        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
                    )?;
                    nodes.push((d, n));
                }
                Ready::Dev(nodes)
            }
            Mount::Tmpfs(t) => Ready::Tmpfs(t.clone()),
            Mount::Bind {
                source,
                target,
                readonly,
                shown,
            } => {
                let (mount, kind) = match binds.as_mut().and_then(Iterator::next) {
                    Some(given) => given,
                    None => {
                        let ro = if *readonly {
                            MountAttrFlags::MOUNT_ATTR_RDONLY
                        } else {
                            MountAttrFlags::empty()
                        };
                        // The error names the source as typed, not its
                        // canonical host path.
                        k.clone_tree(source, safe() | ro)
                            .map_err(|e| anyhow::anyhow!("{shown}: {}", e.root_cause()))?
                    }
                };
                Ready::Attach {
                    mount,
                    target: target.clone(),
                    kind,
                }
            }
        });
    }
    let root = if plan.rw { root } else { k.overlay(root)? };
    k.pivot_into(root)?;
    let create = !plan.rw;
    for r in ready {
        match r {
            Ready::Attach {
                mount,
                target,
                kind,
            } => {
                let at = k.mount_point(&target, kind, create)?;
                k.attach(mount, &at)?;
            }
            Ready::Proc { proc, nulls } => {
                let at = k.mount_point(Path::new("/proc"), Kind::Dir, create)?;
                k.attach(proc, &at)?;
                for name in PROC_READONLY {
                    k.protect(&at.join(name), Protect::ReadOnly)?;
                }
                for (name, null) in PROC_MASKED_FILES.into_iter().zip(nulls) {
                    k.protect(&at.join(name), Protect::MaskFile(null))?;
                }
                for name in PROC_MASKED_DIRS {
                    k.protect(&at.join(name), Protect::MaskDir)?;
                }
            }
            Ready::Tmpfs(t) => {
                let at = k.mount_point(&t, Kind::Dir, create)?;
                k.mount_tmpfs(&at, safe())?;
            }
            Ready::Dev(nodes) => {
                let at = k.mount_point(Path::new("/dev"), Kind::Dir, create)?;
                k.mount_tmpfs(
                    &at,
                    MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
                )?;
                for (d, n) in nodes {
                    let p = k.mount_point(&at.join(n), Kind::File, true)?;
                    k.attach(d, &p)?;
                }
                for (name, dest) in DEV_LINKS {
                    k.symlink(dest, &at.join(name))?;
                }
            }
        }
    }
    if plan.readonly_root {
        k.set_readonly(Path::new("/"))?;
    }
    k.chdir(&plan.cwd)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;
    use std::ffi::OsStr;

    /// Records every call; fails the call whose name is `fail_at`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_at: Option<&'static str>,
    }

    impl Recorder {
        fn note(&mut self, name: &'static str, what: String) -> Result<()> {
            self.calls.push(if what.is_empty() {
                name.to_string()
            } else {
                format!("{name} {what}")
            });
            if self.fail_at == Some(name) {
                bail!("{name} failed");
            }
            Ok(())
        }
        fn pos(&self, call: &str) -> usize {
            self.calls
                .iter()
                .position(|c| c == call)
                .unwrap_or_else(|| panic!("no {call:?} in {:?}", self.calls))
        }
    }

    fn flags(a: MountAttrFlags) -> String {
        let mut s = String::new();
        for (f, n) in [
            (MountAttrFlags::MOUNT_ATTR_RDONLY, "ro"),
            (MountAttrFlags::MOUNT_ATTR_NOSUID, "nosuid"),
            (MountAttrFlags::MOUNT_ATTR_NODEV, "nodev"),
            (MountAttrFlags::MOUNT_ATTR_NOEXEC, "noexec"),
        ] {
            if a.contains(f) {
                s.push(',');
                s.push_str(n);
            }
        }
        s
    }

    impl Kernel for Recorder {
        type Detached = String;
        fn become_root(&mut self) -> Result<()> {
            self.note("root", String::new())
        }
        fn new_session(&mut self) -> Result<()> {
            self.note("setsid", String::new())
        }
        fn set_hostname(&mut self, name: &OsStr) -> Result<()> {
            self.note("hostname", name.to_string_lossy().into())
        }
        fn loopback_up(&mut self) -> Result<()> {
            self.note("lo-up", String::new())
        }
        fn make_mounts_private(&mut self) -> Result<()> {
            self.note("rprivate", String::new())
        }
        fn clone_cwd(&mut self, attrs: MountAttrFlags) -> Result<String> {
            let s = format!("cwd{}", flags(attrs));
            self.note("clone", s.clone())?;
            Ok(s)
        }
        fn clone_tree(&mut self, source: &Path, attrs: MountAttrFlags) -> Result<(String, Kind)> {
            let s = format!("{}{}", source.display(), flags(attrs));
            self.note("clone", s.clone())?;
            let kind = if source.starts_with("/dev") {
                Kind::File
            } else {
                Kind::Dir
            };
            Ok((s, kind))
        }
        fn new_proc(&mut self) -> Result<String> {
            self.note("new-proc", String::new())?;
            Ok("proc".into())
        }
        fn overlay(&mut self, lower: String) -> Result<String> {
            self.note("overlay", lower.clone())?;
            Ok(format!("overlay({lower})"))
        }
        fn pivot_into(&mut self, root: String) -> Result<()> {
            self.note("pivot", root)
        }
        fn mount_point(&mut self, target: &Path, kind: Kind, create: bool) -> Result<PathBuf> {
            let c = if create { "" } else { " no-create" };
            self.note("point", format!("{} {kind:?}{c}", target.display()))?;
            Ok(target.to_path_buf())
        }
        fn attach(&mut self, mount: String, target: &Path) -> Result<()> {
            self.note("attach", format!("{mount} on {}", target.display()))
        }
        fn mount_tmpfs(&mut self, target: &Path, attrs: MountAttrFlags) -> Result<()> {
            self.note("tmpfs", format!("{}{}", target.display(), flags(attrs)))
        }
        fn symlink(&mut self, dest: &str, link: &Path) -> Result<()> {
            self.note("symlink", format!("{} -> {dest}", link.display()))
        }
        fn protect(&mut self, path: &Path, how: Protect<String>) -> Result<bool> {
            let how = match how {
                Protect::ReadOnly => "ro".to_string(),
                Protect::MaskFile(n) => format!("mask {n}"),
                Protect::MaskDir => "mask tmpfs".to_string(),
            };
            self.note("protect", format!("{} {how}", path.display()))?;
            Ok(true)
        }
        fn set_readonly(&mut self, target: &Path) -> Result<()> {
            self.note("ro", target.display().to_string())
        }
        fn chdir(&mut self, dir: &Path) -> Result<()> {
            self.note("chdir", dir.display().to_string())
        }
    }

    impl Host for Recorder {
        type Mount = String;
        fn open_userns(&mut self) -> Result<()> {
            self.note("userns", String::new())
        }
        fn clone_dir(&mut self, attrs: MountAttrFlags) -> Result<String> {
            let s = format!("dir idmap{}", flags(attrs));
            self.note("host-clone", s.clone())?;
            Ok(s)
        }
        fn clone_source(
            &mut self,
            source: &Path,
            _shown: &str,
            idmap: bool,
            attrs: MountAttrFlags,
        ) -> Result<String> {
            let how = if idmap { " idmap" } else { "" };
            let s = format!("{}{how}{}", source.display(), flags(attrs));
            self.note("host-clone", s.clone())?;
            Ok(s)
        }
    }

    #[test]
    fn a_root_caller_idmaps_dir_and_ro_binds_but_not_writable_binds() {
        let mut k = Recorder::default();
        let p = plan(vec![
            Mount::Bind {
                source: "/out".into(),
                target: "/out".into(),
                readonly: false,
                shown: String::new(),
            },
            Mount::Bind {
                source: "/src".into(),
                target: "/src".into(),
                readonly: true,
                shown: String::new(),
            },
        ]);
        let (root, binds) = host(&mut k, &p).unwrap();
        assert_eq!(
            k.calls,
            [
                "userns",
                "host-clone dir idmap,ro,nosuid,nodev",
                "host-clone /out,nosuid,nodev",
                "host-clone /src idmap,ro,nosuid,nodev",
            ]
        );
        // The child then uses them as given, in the same order.
        let mut c = Recorder::default();
        let given = Given {
            root,
            binds: binds.into_iter().map(|b| (b, Kind::Dir)).collect(),
        };
        run(&mut c, &p, Some(given)).unwrap();
        c.pos("attach /out,nosuid,nodev on /out");
        c.pos("attach /src idmap,ro,nosuid,nodev on /src");
        c.pos("overlay dir idmap,ro,nosuid,nodev");
    }

    fn plan(mounts: Vec<Mount>) -> Plan {
        let mut mounts = mounts;
        sort_mounts(&mut mounts);
        Plan {
            mounts,
            readonly_root: true,
            rw: false,
            hostname: Some("box".into()),
            loopback: true,
            cwd: "/data".into(),
        }
    }

    #[test]
    fn steps_run_in_the_order_the_kernel_needs() {
        let mut k = Recorder::default();
        let p = plan(vec![Mount::Bind {
            source: "/src".into(),
            target: "/data".into(),
            readonly: true,
            shown: String::new(),
        }]);
        run(&mut k, &p, None).unwrap();
        assert_eq!(
            k.calls,
            [
                "root",
                "setsid",
                "hostname box",
                "lo-up",
                "rprivate",
                // DIR from the cwd (entered by descriptor), read-only under
                // the overlay, nosuid and nodev.
                "clone cwd,ro,nosuid,nodev",
                "clone /src,ro,nosuid,nodev",
                "overlay cwd,ro,nosuid,nodev",
                "pivot overlay(cwd,ro,nosuid,nodev)",
                "point /data Dir",
                "attach /src,ro,nosuid,nodev on /data",
                "ro /",
                "chdir /data",
            ]
        );
    }

    #[test]
    fn a_root_callers_idmapped_mounts_are_used_as_given() {
        let mut k = Recorder::default();
        let mut p = plan(vec![Mount::Bind {
            source: "/src".into(),
            target: "/out".into(),
            readonly: false,
            shown: String::new(),
        }]);
        p.readonly_root = false;
        let given = Given {
            root: "idmapped-dir".to_string(),
            binds: vec![("idmapped-src".to_string(), Kind::Dir)],
        };
        run(&mut k, &p, Some(given)).unwrap();
        assert!(
            !k.calls.iter().any(|c| c.starts_with("clone")),
            "{:?}",
            k.calls
        );
        assert!(k.pos("overlay idmapped-dir") < k.pos("pivot overlay(idmapped-dir)"));
        assert!(k.pos("pivot overlay(idmapped-dir)") < k.pos("attach idmapped-src on /out"));
    }

    #[test]
    fn proc_is_protected_after_it_is_attached() {
        let mut k = Recorder::default();
        run(&mut k, &plan(vec![Mount::Proc]), None).unwrap();
        let proc = k.pos("new-proc");
        let pivot = k.pos("pivot overlay(cwd,ro,nosuid,nodev)");
        // proc is made while the host's full proc is visible (mount_too_revealing).
        assert!(proc < pivot);
        // The /dev/null clones that will mask files come from the host, before the pivot.
        assert!(k.pos("clone /dev/null,ro,nosuid,noexec") < pivot);
        let attached = k.pos("attach proc on /proc");
        for p in PROC_READONLY {
            assert!(k.pos(&format!("protect /proc/{p} ro")) > attached);
        }
        for p in PROC_MASKED_FILES {
            assert!(
                k.pos(&format!(
                    "protect /proc/{p} mask /dev/null,ro,nosuid,noexec"
                )) > attached
            );
        }
        for p in PROC_MASKED_DIRS {
            assert!(k.pos(&format!("protect /proc/{p} mask tmpfs")) > attached);
        }
    }

    #[test]
    fn rw_uses_dir_itself_and_creates_no_mount_point() {
        let mut k = Recorder::default();
        let mut p = plan(vec![Mount::Tmpfs("/tmp".into())]);
        p.rw = true;
        run(&mut k, &p, None).unwrap();
        assert!(!k.calls.iter().any(|c| c.starts_with("overlay")));
        k.pos("clone cwd,nosuid,nodev");
        k.pos("pivot cwd,nosuid,nodev");
        k.pos("point /tmp Dir no-create");
    }

    #[test]
    fn dev_clones_host_nodes_before_pivot_and_binds_them_after() {
        let mut k = Recorder::default();
        run(&mut k, &plan(vec![Mount::Dev]), None).unwrap();
        let pivot = k.pos("pivot overlay(cwd,ro,nosuid,nodev)");
        for n in DEV_NODES {
            let clone = k.pos(&format!("clone /dev/{n},nosuid,noexec"));
            let attach = k.pos(&format!("attach /dev/{n},nosuid,noexec on /dev/{n}"));
            assert!(clone < pivot && pivot < attach, "{:?}", k.calls);
        }
        assert!(k.pos("tmpfs /dev,nosuid,noexec") > pivot);
        k.pos("symlink /dev/fd -> /proc/self/fd");
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let mut k = Recorder::default();
        run(
            &mut k,
            &plan(vec![
                Mount::Bind {
                    source: "/x".into(),
                    target: "/a/b".into(),
                    readonly: false,
                    shown: String::new(),
                },
                Mount::Tmpfs("/a".into()),
            ]),
            None,
        )
        .unwrap();
        assert!(k.pos("tmpfs /a,nosuid,nodev") < k.pos("attach /x,nosuid,nodev on /a/b"));
    }

    #[test]
    fn a_failed_step_stops_everything_after_it() {
        let mut k = Recorder {
            fail_at: Some("pivot"),
            ..Default::default()
        };
        let e = run(&mut k, &plan(vec![Mount::Tmpfs("/tmp".into())]), None).unwrap_err();
        assert_eq!(e.to_string(), "pivot failed");
        assert!(k.calls.last().unwrap().starts_with("pivot "));
        let mut k = Recorder {
            fail_at: Some("rprivate"),
            ..Default::default()
        };
        assert!(run(&mut k, &plan(vec![]), None).is_err());
        assert!(!k.calls.iter().any(|c| c.starts_with("clone")));
    }
}
