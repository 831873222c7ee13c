//! User namespace plumbing: the id maps the parent writes for the child, and
//! the one-line diagnosis of a kernel that refuses user namespaces (issue 5:
//! name the knob and the command that changes it). Both are pure functions
//! of their inputs, so the diagnosis is unit-tested against fake `/proc`
//! readings.

use std::fs;
use std::io;
use std::path::Path;

use anyhow::Context;
use nix::errno::Errno;
use nix::unistd::Pid;

/// What the parent writes into `/proc/PID/{setgroups,uid_map,gid_map}`.
#[derive(Debug, PartialEq, Eq)]
pub struct IdMaps {
    pub uid_map: String,
    pub gid_map: String,
    /// Unprivileged writers must deny setgroups before writing gid_map
    /// (user_namespaces(7), since Linux 3.19).
    pub deny_setgroups: bool,
}

impl IdMaps {
    /// The maps for a caller: an ordinary user becomes root and nothing
    /// else (`0 UID 1`, as `unshare -r`); root keeps every id it has, mapped
    /// to itself, so the container sees owners as a bare chroot would.
    /// `own_uid_map`/`own_gid_map` are the caller's own `/proc/self/*_map`.
    pub fn for_caller(euid: u32, egid: u32, own_uid_map: &str, own_gid_map: &str) -> IdMaps {
        if euid == 0 {
            IdMaps {
                uid_map: identity(own_uid_map),
                gid_map: identity(own_gid_map),
                deny_setgroups: false,
            }
        } else {
            IdMaps {
                uid_map: format!("0 {euid} 1\n"),
                gid_map: format!("0 {egid} 1\n"),
                deny_setgroups: true,
            }
        }
    }

    /// Writes the maps of process `pid` (each file takes one write).
    pub fn write(&self, pid: Pid) -> anyhow::Result<()> {
        if self.deny_setgroups {
            let path = format!("/proc/{pid}/setgroups");
            match fs::write(&path, "deny") {
                // Kernels before 3.19 have no such file and need no deny.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                r => r.with_context(|| format!("writing {path}"))?,
            }
        }
        for (name, map) in [("uid_map", &self.uid_map), ("gid_map", &self.gid_map)] {
            let path = format!("/proc/{pid}/{name}");
            fs::write(&path, map).with_context(|| format!("writing {path}"))?;
        }
        Ok(())
    }
}

/// `inside outside count` lines → `inside inside count`.
fn identity(own_map: &str) -> String {
    let mut out = String::new();
    for line in own_map.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [inside, _, count] = f[..] {
            out.push_str(&format!("{inside} {inside} {count}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("0 0 1\n");
    }
    out
}

/// The readings that decide whether user namespaces are allowed.
#[derive(Debug, Default, Clone)]
pub struct Knobs {
    pub unprivileged_userns_clone: Option<i64>,
    pub apparmor_restrict_unprivileged_userns: Option<i64>,
    pub max_user_namespaces: Option<i64>,
    pub userns_restrict: Option<i64>,
    /// `Seccomp:` of /proc/self/status (2 = a filter is installed).
    pub seccomp: Option<i64>,
    /// /proc/self/ns/user exists (CONFIG_USER_NS).
    pub userns_supported: bool,
}

impl Knobs {
    /// Reads the knobs under `proc` (normally `/proc`).
    pub fn read(proc: &Path) -> Knobs {
        let num = |rel: &str| -> Option<i64> {
            fs::read_to_string(proc.join(rel))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        let seccomp = fs::read_to_string(proc.join("self/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Seccomp:"))
                    .and_then(|v| v.trim().parse().ok())
            });
        Knobs {
            unprivileged_userns_clone: num("sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_unprivileged_userns: num(
                "sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            max_user_namespaces: num("sys/user/max_user_namespaces"),
            userns_restrict: num("sys/kernel/userns_restrict"),
            seccomp,
            userns_supported: proc.join("self/ns/user").exists(),
        }
    }
}

/// The sysctl that forbids this caller user namespaces, if one does, with
/// the command that allows them.
pub fn knob(euid: u32, k: &Knobs) -> Option<String> {
    let unprivileged = euid != 0;
    if unprivileged && k.unprivileged_userns_clone == Some(0) {
        return Some(
            "kernel.unprivileged_userns_clone=0 allows user namespaces to root only (Debian); \
             allow them with `sysctl -w kernel.unprivileged_userns_clone=1`"
                .into(),
        );
    }
    if unprivileged
        && k.apparmor_restrict_unprivileged_userns
            .is_some_and(|v| v > 0)
    {
        return Some(
            "kernel.apparmor_restrict_unprivileged_userns=1 restricts user namespaces to programs \
             with an AppArmor profile allowing `userns,` (Ubuntu 23.10 and later); add such a \
             profile for chrootrun or run `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
                .into(),
        );
    }
    if k.max_user_namespaces == Some(0) {
        return Some(
            "user.max_user_namespaces=0 disables user namespaces; \
             allow them with `sysctl -w user.max_user_namespaces=15000`"
                .into(),
        );
    }
    if unprivileged && k.userns_restrict.is_some_and(|v| v > 0) {
        return Some(
            "kernel.userns_restrict=1 allows user namespaces to root only; \
             allow them with `sysctl -w kernel.userns_restrict=0`"
                .into(),
        );
    }
    None
}

/// Why `clone(CLONE_NEWUSER)` failed with `errno`, as one line.
pub fn refusal(errno: Errno, euid: u32, k: &Knobs) -> String {
    let head = "cannot create a user namespace";
    if let Some(why) = knob(euid, k) {
        return format!("{head}: {why}");
    }
    match errno {
        Errno::ENOSPC => format!(
            "{head}: the limit user.max_user_namespaces={} is reached; raise it with \
             `sysctl -w user.max_user_namespaces=N`",
            k.max_user_namespaces
                .map_or_else(|| "?".to_string(), |v| v.to_string())
        ),
        Errno::EUSERS => format!("{head}: user namespaces are nested 32 deep already"),
        Errno::EINVAL if !k.userns_supported => {
            format!("{head}: this kernel has no user namespaces (CONFIG_USER_NS is off)")
        }
        Errno::EPERM => {
            let filter = if k.seccomp == Some(2) {
                " (this process runs under a seccomp filter)"
            } else {
                ""
            };
            format!(
                "{head}: refused (EPERM) though no sysctl forbids it \
                 (kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, \
                 user.max_user_namespaces, kernel.userns_restrict): a seccomp filter or container \
                 sandbox blocks unshare/clone(CLONE_NEWUSER){filter}, or chrootrun runs inside a \
                 chroot; run it outside that sandbox or allow CLONE_NEWUSER in its profile"
            )
        }
        other => format!("{head}: {}", other.desc()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn debian_knob_is_named_with_its_command() {
        let d = fake(&[
            ("sys/kernel/unprivileged_userns_clone", "0\n"),
            ("sys/user/max_user_namespaces", "63000\n"),
        ]);
        let m = refusal(Errno::EPERM, 1000, &Knobs::read(d.path()));
        assert!(m.contains("kernel.unprivileged_userns_clone=0"), "{m}");
        assert!(
            m.contains("sysctl -w kernel.unprivileged_userns_clone=1"),
            "{m}"
        );
        // Root is not subject to it: then nothing explains the EPERM.
        let m = refusal(Errno::EPERM, 0, &Knobs::read(d.path()));
        assert!(m.contains("seccomp"), "{m}");
    }

    #[test]
    fn ubuntu_apparmor_knob() {
        let d = fake(&[("sys/kernel/apparmor_restrict_unprivileged_userns", "1\n")]);
        let m = refusal(Errno::EACCES, 1000, &Knobs::read(d.path()));
        assert!(m.contains("apparmor_restrict_unprivileged_userns=1"), "{m}");
        assert!(m.contains("AppArmor profile"), "{m}");
        assert!(m.contains("sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"));
    }

    #[test]
    fn max_user_namespaces_zero_stops_root_too() {
        let d = fake(&[("sys/user/max_user_namespaces", "0\n")]);
        let m = refusal(Errno::ENOSPC, 0, &Knobs::read(d.path()));
        assert!(m.contains("user.max_user_namespaces=0"), "{m}");
        assert!(m.contains("sysctl -w user.max_user_namespaces="), "{m}");
    }

    #[test]
    fn hardened_userns_restrict() {
        let d = fake(&[("sys/kernel/userns_restrict", "1\n")]);
        let m = refusal(Errno::EPERM, 1000, &Knobs::read(d.path()));
        assert!(m.contains("kernel.userns_restrict=1"), "{m}");
        assert!(m.contains("sysctl -w kernel.userns_restrict=0"), "{m}");
    }

    #[test]
    fn eperm_without_a_knob_blames_a_sandbox() {
        let d = fake(&[
            ("sys/user/max_user_namespaces", "63000\n"),
            (
                "self/status",
                "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n",
            ),
        ]);
        let m = refusal(Errno::EPERM, 1000, &Knobs::read(d.path()));
        assert!(m.contains("seccomp filter or container sandbox"), "{m}");
        assert!(m.contains("runs under a seccomp filter"), "{m}");
        assert!(knob(1000, &Knobs::read(d.path())).is_none());
    }

    #[test]
    fn limit_reached_and_no_kernel_support() {
        let d = fake(&[("sys/user/max_user_namespaces", "5\n")]);
        let k = Knobs::read(d.path());
        assert!(refusal(Errno::ENOSPC, 1000, &k).contains("max_user_namespaces=5 is reached"));
        assert!(refusal(Errno::EINVAL, 1000, &k).contains("CONFIG_USER_NS"));
        assert!(!refusal(Errno::EINVAL, 1000, &k).contains('\n'));
    }

    #[test]
    fn maps_for_a_user_and_for_root() {
        let m = IdMaps::for_caller(1000, 100, "", "");
        assert_eq!(m.uid_map, "0 1000 1\n");
        assert_eq!(m.gid_map, "0 100 1\n");
        assert!(m.deny_setgroups);
        let init = "         0          0 4294967295\n";
        let m = IdMaps::for_caller(0, 0, init, init);
        assert_eq!(m.uid_map, "0 0 4294967295\n");
        assert!(!m.deny_setgroups);
        // Root of a nested namespace (`unshare -r`) owns one id only.
        let m = IdMaps::for_caller(0, 0, "0 1000 1\n", "0 100 1\n");
        assert_eq!(
            (m.uid_map.as_str(), m.gid_map.as_str()),
            ("0 0 1\n", "0 0 1\n")
        );
    }
}
