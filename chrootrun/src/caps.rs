//! The program's capabilities: Docker's default set, adjustable with
//! `--cap-add`/`--cap-drop`.
//!
//! Why drop rather than nest a second user namespace: root inside the
//! container's user namespace holds every capability over the mounts
//! chrootrun made there, so with CAP_SYS_ADMIN it could clear a read-only
//! flag (`mount_setattr(attr_clr=MOUNT_ATTR_RDONLY)`, `mount -o
//! remount,rw`) or unmount a /proc mask. Making the mounts in a more
//! privileged user namespace than the program's would have the kernel lock
//! them (MNT_LOCK_READONLY, MNT_LOCKED: mount_namespaces(7)), but costs a
//! second user namespace, mount namespace copy and process on every run.
//! Dropping CAP_SYS_ADMIN (with the rest of what Docker drops: moby's
//! `oci/caps/defaults.go`) takes the mount syscalls away at no cost, and a
//! user namespace the program makes itself gets copies of our mounts that
//! the kernel does lock. The bounding set is what root regains at execve
//! (capabilities(7)), so it is reduced, not only the effective set;
//! no_new_privs stops file capabilities and setuid from adding any back
//! (the mounts are nosuid too). The inheritable set is emptied, as runc
//! does since CVE-2022-24769.

use anyhow::{Context, Result};
use rustix::thread::{
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
    set_no_new_privs, CapabilitySet, CapabilitySets,
};

fn errno(e: rustix::io::Errno) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error())
}

/// Docker's default capabilities.
pub const DEFAULT: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::AUDIT_WRITE);

/// `SYS_ADMIN`, `CAP_SYS_ADMIN`, `sys_admin` or `ALL`.
pub fn parse(name: &str) -> Option<CapabilitySet> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Some(CapabilitySet::all());
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CapabilitySet::from_name(bare)
}

/// The set the program keeps.
pub fn resolve(add: &[CapabilitySet], drop: &[CapabilitySet]) -> CapabilitySet {
    let mut keep = DEFAULT;
    for d in drop {
        keep.remove(*d);
    }
    for a in add {
        keep.insert(*a);
    }
    keep
}

/// Reduces this process (about to exec the program) to `keep`.
pub fn drop_to(keep: CapabilitySet) -> Result<()> {
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1u64 << bit);
        if keep.contains(cap) {
            continue;
        }
        match remove_capability_from_bounding_set(cap) {
            // EINVAL: a number past this kernel's CAP_LAST_CAP.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(errno(e)).context("dropping capabilities (PR_CAPBSET_DROP)"),
        }
    }
    // Ambient capabilities exist since Linux 4.3; nothing to clear before.
    let _ = clear_ambient_capability_set();
    set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(errno)
    .context("dropping capabilities (capset)")?;
    set_no_new_privs(true)
        .map_err(errno)
        .context("setting no_new_privs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_the_prefix() {
        assert_eq!(parse("SYS_ADMIN"), Some(CapabilitySet::SYS_ADMIN));
        assert_eq!(parse("cap_net_admin"), Some(CapabilitySet::NET_ADMIN));
        assert_eq!(parse("all"), Some(CapabilitySet::all()));
        assert_eq!(parse("NOPE"), None);
    }

    #[test]
    fn the_default_set_has_no_sys_admin_and_add_drop_apply() {
        assert!(!DEFAULT.contains(CapabilitySet::SYS_ADMIN));
        assert!(DEFAULT.contains(CapabilitySet::CHOWN));
        assert_eq!(DEFAULT.bits().count_ones(), 14);
        let k = resolve(&[CapabilitySet::SYS_PTRACE], &[CapabilitySet::NET_RAW]);
        assert!(k.contains(CapabilitySet::SYS_PTRACE) && !k.contains(CapabilitySet::NET_RAW));
        assert!(resolve(&[], &[CapabilitySet::all()]).is_empty());
    }
}
