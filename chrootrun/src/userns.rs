//! User namespace plumbing: the id maps the parent writes for the child, and
//! the one-line diagnosis of a kernel that refuses user namespaces (naming
//! the knob and the command that changes it). Both are pure functions
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

/// A range of subordinate ids (subuid(5)): host ids `start..start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// The range a root caller's container maps to where /etc/subuid and
/// /etc/subgid give root none: 65536 ids from 2^31. It lies above every id
/// useradd allocates (SUB_UID_MAX defaults to 600100000, login.defs(5))
/// and above the ranges systemd hands out to users and containers
/// (systemd's UIDS-GIDS.md stops them below 2^31), and it is as large as
/// the range podman and Docker map a container to (65536 ids, so Debian's
/// nobody 65534 is inside).
pub const FALLBACK: Range = Range {
    start: 1 << 31,
    count: 65536,
};

/// The first `NAME:START:COUNT` line of a subuid(5)/subgid(5) file whose
/// name is one of `names` (a user name or a decimal id).
pub fn sub_range(text: &str, names: &[&str]) -> Option<Range> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (name, start, count) = (f.next()?, f.next()?, f.next()?);
        if !names.contains(&name) {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
        (count > 0).then_some(Range { start, count })
    })
}

/// Root's ranges (uid, gid): its /etc/subuid and /etc/subgid entries,
/// else [`FALLBACK`].
pub fn root_ranges() -> (Range, Range) {
    let read = |p: &str| {
        fs::read_to_string(p)
            .ok()
            .and_then(|t| sub_range(&t, &["root", "0"]))
            .unwrap_or(FALLBACK)
    };
    (read("/etc/subuid"), read("/etc/subgid"))
}

impl IdMaps {
    /// A root caller's container: its ids `0..count` are the host's
    /// `start..start+count`, so its root is an unprivileged host id and
    /// cannot write /proc/sys, signal host processes or own host files.
    pub fn for_root((uids, gids): &(Range, Range)) -> IdMaps {
        IdMaps {
            uid_map: format!("0 {} {}\n", uids.start, uids.count),
            gid_map: format!("0 {} {}\n", gids.start, gids.count),
            deny_setgroups: false,
        }
    }

    /// An ordinary caller becomes root and nothing else (`0 UID 1`, as
    /// `unshare -r`); `--map-users` adds its subordinate range with
    /// newuidmap(1).
    pub fn for_user(euid: u32, egid: u32) -> IdMaps {
        IdMaps {
            uid_map: format!("0 {euid} 1\n"),
            gid_map: format!("0 {egid} 1\n"),
            deny_setgroups: true,
        }
    }

    /// `--host-root`: root keeps every id it has, mapped to itself (the
    /// old, unsafe behaviour: the program is host root).
    /// `own_uid_map`/`own_gid_map` are the caller's own `/proc/self/*_map`.
    pub fn identity(own_uid_map: &str, own_gid_map: &str) -> IdMaps {
        IdMaps {
            uid_map: identity(own_uid_map),
            gid_map: identity(own_gid_map),
            deny_setgroups: false,
        }
    }

    /// The host ids `(start, count)` of a single-line uid map `0 START COUNT`.
    pub fn uid_range(&self) -> Option<(u64, u64)> {
        range_of(&self.uid_map)
    }

    /// The same for the gid map.
    pub fn gid_range(&self) -> Option<(u64, u64)> {
        range_of(&self.gid_map)
    }

    /// Writes the maps of process `pid` (each file takes one write).
    pub fn write(&self, pid: Pid) -> anyhow::Result<()> {
        if self.deny_setgroups {
            let path = format!("/proc/{pid}/setgroups");
            match fs::write(&path, "deny") {
                // Kernels before 3.19 have no such file and need no deny.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                r => r
                    .map_err(crate::os)
                    .with_context(|| format!("writing {path}"))?,
            }
        }
        for (name, map) in [("uid_map", &self.uid_map), ("gid_map", &self.gid_map)] {
            let path = format!("/proc/{pid}/{name}");
            fs::write(&path, map)
                .map_err(crate::os)
                .with_context(|| format!("writing {path}"))?;
        }
        Ok(())
    }
}

/// `--map-users` for an ordinary caller: the caller is 0 and its
/// subordinate range (subuid(5)) is 1.., written by newuidmap(1) and
/// newgidmap(1), the setuid helpers that check /etc/subuid and
/// /etc/subgid. A map can be written once, so this replaces
/// [`IdMaps::write`].
pub fn map_subordinate(pid: Pid, euid: u32, egid: u32) -> anyhow::Result<()> {
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(euid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| euid.to_string());
    let uid = euid.to_string();
    for (tool, file, id) in [
        ("newuidmap", "/etc/subuid", euid),
        ("newgidmap", "/etc/subgid", egid),
    ] {
        let text = fs::read_to_string(file).unwrap_or_default();
        let Some(r) = sub_range(&text, &[name.as_str(), uid.as_str()]) else {
            anyhow::bail!("--map-users: {file} has no range for {name} (add one with `usermod --add-subuids`/`--add-subgids`)");
        };
        let out = std::process::Command::new(tool)
            .args([
                pid.to_string(),
                "0".into(),
                id.to_string(),
                "1".into(),
                "1".into(),
                r.start.to_string(),
                r.count.to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                anyhow::bail!("--map-users: {tool} not found (Debian's package uidmap installs it)")
            }
            Err(e) => anyhow::bail!("--map-users: running {tool}: {}", crate::reason(&e)),
            Ok(o) if !o.status.success() => {
                let err = String::from_utf8_lossy(&o.stderr);
                anyhow::bail!(
                    "--map-users: {tool} failed: {}",
                    err.lines().next().unwrap_or("no message").trim()
                );
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn range_of(map: &str) -> Option<(u64, u64)> {
    let f: Vec<u64> = map
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    match f[..] {
        [0, start, count] => Some((start, count)),
        _ => None,
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
    fn maps_for_a_user_for_root_and_for_host_root() {
        let m = IdMaps::for_user(1000, 100);
        assert_eq!(m.uid_map, "0 1000 1\n");
        assert_eq!(m.gid_map, "0 100 1\n");
        assert!(m.deny_setgroups);
        let m = IdMaps::for_root(&(
            FALLBACK,
            Range {
                start: 300000,
                count: 1000,
            },
        ));
        assert_eq!(m.uid_map, "0 2147483648 65536\n");
        assert_eq!(m.gid_map, "0 300000 1000\n");
        assert!(!m.deny_setgroups);
        let init = "         0          0 4294967295\n";
        let m = IdMaps::identity(init, init);
        assert_eq!(m.uid_map, "0 0 4294967295\n");
        // Root of a nested namespace (`unshare -r`) owns one id only.
        let m = IdMaps::identity("0 1000 1\n", "0 100 1\n");
        assert_eq!(
            (m.uid_map.as_str(), m.gid_map.as_str()),
            ("0 0 1\n", "0 0 1\n")
        );
    }

    #[test]
    fn the_host_range_is_read_back_from_a_single_line_map() {
        let m = IdMaps::for_root(&(FALLBACK, Range { start: 5, count: 7 }));
        assert_eq!(m.uid_range(), Some((1 << 31, 65536)));
        assert_eq!(m.gid_range(), Some((5, 7)));
        assert_eq!(IdMaps::identity("0 0 10\n5 5 1\n", "").uid_range(), None);
    }

    #[test]
    fn subordinate_ranges_are_found_by_name_or_id() {
        let text = "alice:100000:65536\n0:200000:1000\nbad line\nbob:1:0\n";
        assert_eq!(
            sub_range(text, &["root", "0"]),
            Some(Range {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(
            sub_range(text, &["alice"]),
            Some(Range {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(sub_range(text, &["bob"]), None);
        assert_eq!(sub_range("", &["root"]), None);
    }
}
