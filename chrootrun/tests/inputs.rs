//! Bad input to the new id mapping and mount steps: each is one line on
//! stderr naming the cause, exit 125, and nothing left mounted or created
//! on the host.

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

mod common;
use common::*;

fn one_line_125(o: &std::process::Output, want: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(125), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains(want), "wanted {want:?} in {e}");
}

#[test]
fn a_dir_that_is_a_symlink_is_refused_not_followed() {
    each_caller(|f| {
        let t = f.busybox("t");
        symlink("t", f.path("link")).unwrap();
        let o = f.run(&[s(&f.path("link")), "/bin/true"]);
        one_line_125(&o, "a symbolic link");
        // The message names DIR as typed, quoted, and no other host path.
        assert!(stderr(&o).contains(&format!("\"{}\"", s(&f.path("link")))));
        assert!(!stderr(&o).contains(s(&t)), "{}", stderr(&o));
    });
}

#[test]
fn a_filesystem_that_refuses_idmapping_names_it_and_the_way_out() {
    for caller in callers() {
        // Only a root caller's DIR and read-only binds are idmapped.
        if caller.user.is_some() || !caller.userns_ok {
            continue;
        }
        let f = Fixture::new(caller);
        let t = f.busybox("t");
        let o = f.run(&["--ro-bind", "/proc/self:/x", s(&t), "/bin/true"]);
        one_line_125(
            &o,
            "--ro-bind \"/proc/self\": its filesystem (proc) cannot be idmapped",
        );
        assert!(stderr(&o).contains("--host-root"), "{}", stderr(&o));
        assert!(!t.join("x").exists());
        // --host-root is the documented way back, and works.
        let o = f.run(&[
            "--host-root",
            "--ro-bind",
            "/proc/self:/x",
            s(&t),
            "/bin/echo",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
}

#[test]
fn a_vanished_bind_source_and_a_bad_capability_are_one_line() {
    each_caller(|f| {
        let t = f.busybox("t");
        let gone = f.path("gone");
        fs::create_dir(&gone).unwrap();
        fs::remove_dir(&gone).unwrap();
        let o = f.run(&["--bind", &format!("{}:/x", s(&gone)), s(&t), "/bin/true"]);
        one_line_125(&o, "No such file or directory");
        let o = f.run(&["--cap-add", "NOT_A_CAP", s(&t), "/bin/true"]);
        one_line_125(&o, "'NOT_A_CAP' is not a capability name");
    });
}

#[test]
fn capabilities_are_dockers_and_cap_options_change_them() {
    each_caller(|f| {
        let t = f.busybox("t");
        applets(&t);
        let caps = |extra: &[&str]| -> String {
            let mut args = vec!["--proc"];
            args.extend_from_slice(extra);
            args.extend([s(&t), "/bin/sh", "-c", "grep CapBnd /proc/self/status"]);
            let o = f.run(&args);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            stdout(&o)
        };
        // Docker's 14: chown dac_override fowner fsetid kill setgid setuid
        // setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
        assert_eq!(caps(&[]), "CapBnd:\t00000000a80425fb\n");
        assert_eq!(
            caps(&["--cap-add", "SYS_ADMIN", "--cap-drop", "NET_RAW"]),
            "CapBnd:\t00000000a82405fb\n"
        );
        assert_eq!(caps(&["--cap-drop", "ALL"]), "CapBnd:\t0000000000000000\n");
    });
}

fn applets(t: &std::path::Path) {
    let _ = symlink("busybox", t.join("bin/grep"));
}

#[test]
fn map_users_maps_the_subordinate_range_or_says_why_not() {
    for caller in callers() {
        let Some((uid, _)) = caller.user else {
            continue;
        };
        if !caller.userns_ok {
            continue;
        }
        let f = Fixture::new(caller);
        let t = f.busybox("t");
        // newuidmap missing from PATH.
        let o = f.run_with(&["--map-users", "--proc", s(&t), "/bin/true"], |c| {
            c.env("PATH", "/nonexistent");
        });
        let has_entry = fs::read_to_string("/etc/subuid")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{USER}:")) || l.starts_with(&format!("{uid}:")));
        if has_entry {
            one_line_125(
                &o,
                "newuidmap not found (Debian's package uidmap installs it)",
            );
        } else {
            one_line_125(&o, "/etc/subuid has no range for chrootrun-test");
            // Give the test user a range, as usermod would for any user.
            let st = Command::new("usermod")
                .args([
                    "--add-subuids",
                    "300000-365535",
                    "--add-subgids",
                    "300000-365535",
                    USER,
                ])
                .status();
            if !st.is_ok_and(|s| s.success()) {
                testkit::skip(format!("usermod cannot add subordinate ids for {USER}"));
                return;
            }
        }
        if Command::new("newuidmap").arg("--help").output().is_err() {
            testkit::skip("newuidmap is not installed (package uidmap)");
            return;
        }
        let o = f.run(&[
            "--map-users",
            "--proc",
            s(&t),
            "/bin/cat",
            "/proc/self/uid_map",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let lines: Vec<Vec<String>> = stdout(&o)
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        assert_eq!(lines.len(), 2, "{}", stdout(&o));
        assert_eq!(lines[0], ["0", &uid.to_string(), "1"]);
        assert_eq!(lines[1][0], "1");
    }
}
