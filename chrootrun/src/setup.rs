//! The container's mount namespace, step by step. The order is the point,
//! and is unit-tested against a recording kernel:
//!
//! | step | why |
//! |---|---|
//! | hostname, loopback | their namespaces are already new (clone flags) |
//! | make every mount private | a copied namespace keeps shared peers; without this our mounts (and the old root's unmount) would propagate to the host (mount_namespaces(7)) |
//! | bind DIR onto itself | pivot_root(2) needs a mount point |
//! | clone bind sources, make proc | sources are host paths, and a user namespace may mount proc only while a full proc is visible (mount_too_revealing) — both need the old root |
//! | pivot_root, detach the old root | from here no path leads to the host: the classic `chroot` escape finds nothing |
//! | attach mounts, parents first | mount points are found inside the new root (inroot.rs) |
//! | --ro | last, so missing mount points could still be created |
//! | chdir --cwd | resolved inside the new root |

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use nix::mount::MsFlags;

use crate::inroot::Kind;
use crate::kernel::Kernel;

/// What the child sets up before it runs the command.
#[derive(Debug, Clone)]
pub struct Plan {
    /// DIR, canonical.
    pub root: PathBuf,
    /// Sorted parents first (see [`sort_mounts`]).
    pub mounts: Vec<Mount>,
    pub readonly_root: bool,
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
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
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

enum Ready<D> {
    Attach {
        mount: D,
        target: PathBuf,
        kind: Kind,
    },
    Tmpfs(PathBuf),
    Dev(Vec<(D, &'static str)>),
}

/// Runs the plan.
pub fn run<K: Kernel>(k: &mut K, plan: &Plan) -> Result<()> {
    if let Some(name) = &plan.hostname {
        k.set_hostname(name)?;
    }
    if plan.loopback {
        k.loopback_up()?;
    }
    k.make_mounts_private()?;
    k.bind_onto_itself(&plan.root)?;
    let mut ready = Vec::new();
    for m in &plan.mounts {
        ready.push(match m {
            Mount::Proc => Ready::Attach {
                mount: k.new_proc()?,
                target: "/proc".into(),
                kind: Kind::Dir,
            },
            Mount::Dev => {
                let mut nodes = Vec::new();
                for n in DEV_NODES {
                    let (d, _) = k.clone_tree(&Path::new("/dev").join(n), false)?;
                    nodes.push((d, n));
                }
                Ready::Dev(nodes)
            }
            Mount::Tmpfs(t) => Ready::Tmpfs(t.clone()),
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                let (mount, kind) = k.clone_tree(source, *readonly)?;
                Ready::Attach {
                    mount,
                    target: target.clone(),
                    kind,
                }
            }
        });
    }
    k.pivot_root(&plan.root)?;
    for r in ready {
        match r {
            Ready::Attach {
                mount,
                target,
                kind,
            } => {
                let at = k.mount_point(&target, kind)?;
                k.attach(mount, &at)?;
            }
            Ready::Tmpfs(t) => {
                let at = k.mount_point(&t, Kind::Dir)?;
                k.mount_tmpfs(&at, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
            }
            Ready::Dev(nodes) => {
                let at = k.mount_point(Path::new("/dev"), Kind::Dir)?;
                k.mount_tmpfs(&at, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
                for (d, n) in nodes {
                    let p = k.mount_point(&at.join(n), Kind::File)?;
                    k.attach(d, &p)?;
                }
                for (name, dest) in DEV_LINKS {
                    k.symlink(dest, &at.join(name))?;
                }
            }
        }
    }
    if plan.readonly_root {
        k.remount_root_readonly()?;
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
    }

    impl Kernel for Recorder {
        type Detached = String;
        fn set_hostname(&mut self, name: &OsStr) -> Result<()> {
            self.note("hostname", name.to_string_lossy().into())
        }
        fn loopback_up(&mut self) -> Result<()> {
            self.note("lo-up", String::new())
        }
        fn make_mounts_private(&mut self) -> Result<()> {
            self.note("rprivate", String::new())
        }
        fn bind_onto_itself(&mut self, dir: &Path) -> Result<()> {
            self.note("bind-self", dir.display().to_string())
        }
        fn clone_tree(&mut self, source: &Path, readonly: bool) -> Result<(String, Kind)> {
            let s = format!("{}{}", source.display(), if readonly { " ro" } else { "" });
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
        fn pivot_root(&mut self, dir: &Path) -> Result<()> {
            self.note("pivot", dir.display().to_string())
        }
        fn mount_point(&mut self, target: &Path, kind: Kind) -> Result<PathBuf> {
            self.note("point", format!("{} {kind:?}", target.display()))?;
            Ok(target.to_path_buf())
        }
        fn attach(&mut self, mount: String, target: &Path) -> Result<()> {
            self.note("attach", format!("{mount} on {}", target.display()))
        }
        fn mount_tmpfs(&mut self, target: &Path, _flags: MsFlags) -> Result<()> {
            self.note("tmpfs", target.display().to_string())
        }
        fn symlink(&mut self, dest: &str, link: &Path) -> Result<()> {
            self.note("symlink", format!("{} -> {dest}", link.display()))
        }
        fn remount_root_readonly(&mut self) -> Result<()> {
            self.note("ro-root", String::new())
        }
        fn chdir(&mut self, dir: &Path) -> Result<()> {
            self.note("chdir", dir.display().to_string())
        }
    }

    fn plan(mounts: Vec<Mount>) -> Plan {
        let mut mounts = mounts;
        sort_mounts(&mut mounts);
        Plan {
            root: "/c".into(),
            mounts,
            readonly_root: true,
            hostname: Some("box".into()),
            loopback: true,
            cwd: "/data".into(),
        }
    }

    #[test]
    fn steps_run_in_the_order_the_kernel_needs() {
        let mut k = Recorder::default();
        let p = plan(vec![
            Mount::Bind {
                source: "/src".into(),
                target: "/data".into(),
                readonly: true,
            },
            Mount::Proc,
        ]);
        run(&mut k, &p).unwrap();
        assert_eq!(
            k.calls,
            [
                "hostname box",
                "lo-up",
                "rprivate",
                "bind-self /c",
                "clone /src ro",
                "new-proc",
                "pivot /c",
                "point /data Dir",
                "attach /src ro on /data",
                "point /proc Dir",
                "attach proc on /proc",
                "ro-root",
                "chdir /data",
            ]
        );
    }

    #[test]
    fn dev_clones_host_nodes_before_pivot_and_binds_them_after() {
        let mut k = Recorder::default();
        run(&mut k, &plan(vec![Mount::Dev])).unwrap();
        let pivot = k.calls.iter().position(|c| c == "pivot /c").unwrap();
        for n in DEV_NODES {
            let clone = k
                .calls
                .iter()
                .position(|c| *c == format!("clone /dev/{n}"))
                .unwrap();
            let attach = k
                .calls
                .iter()
                .position(|c| *c == format!("attach /dev/{n} on /dev/{n}"))
                .unwrap();
            assert!(clone < pivot && pivot < attach, "{:?}", k.calls);
        }
        let tmpfs = k.calls.iter().position(|c| c == "tmpfs /dev").unwrap();
        assert!(tmpfs > pivot);
        assert!(k
            .calls
            .contains(&"symlink /dev/fd -> /proc/self/fd".to_string()));
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
                },
                Mount::Tmpfs("/a".into()),
            ]),
        )
        .unwrap();
        let a = k.calls.iter().position(|c| c == "tmpfs /a").unwrap();
        let b = k
            .calls
            .iter()
            .position(|c| c == "attach /x on /a/b")
            .unwrap();
        assert!(a < b, "{:?}", k.calls);
    }

    #[test]
    fn a_failed_step_stops_everything_after_it() {
        let mut k = Recorder {
            fail_at: Some("pivot"),
            ..Default::default()
        };
        let e = run(&mut k, &plan(vec![Mount::Tmpfs("/tmp".into())])).unwrap_err();
        assert_eq!(e.to_string(), "pivot failed");
        assert_eq!(k.calls.last().map(String::as_str), Some("pivot /c"));
        let mut k = Recorder {
            fail_at: Some("rprivate"),
            ..Default::default()
        };
        assert!(run(&mut k, &plan(vec![])).is_err());
        assert!(!k.calls.iter().any(|c| c.starts_with("bind-self")));
    }
}
