//! "Are we root", and an ordinary user to run as. The tools promise to
//! work without root, so the tests that can run as root run a second
//! time as an ordinary user: as root, one made with `useradd` (a normal
//! account with a home, so that it also gets `/etc/subuid` ranges for
//! rootless podman, see useradd(8) SUB_UID_COUNT) and entered with
//! `setpriv`; when the tests already run as an ordinary user, that user.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// True when the tests run as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// An ordinary (non-root) user that `command` runs programs as.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Whether `command` must switch to the user (we are root).
    switch: bool,
}

/// The PATH Debian's login gives an ordinary user (login.defs ENV_PATH):
/// no /usr/sbin, no /sbin.
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn id_of(flag: &str, name: &str) -> Option<u32> {
    let o = Command::new("id").args([flag, name]).output().ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

fn home_of(name: &str) -> Option<PathBuf> {
    let o = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    line.trim_end().split(':').nth(5).map(PathBuf::from)
}

/// True when root can run `bin --version` as uid/gid 65534 through
/// `setpriv` (the binary's directories must be searchable by nobody),
/// so a test can repeat itself as an ordinary user without creating one.
pub fn runs_as_nobody(bin: &std::path::Path) -> bool {
    is_root()
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The ordinary user `name`, created (with a home) when we are root and
/// it does not exist; when we are not root, the current user, whatever
/// `name` says. Err says why there is none (for `skip`).
pub fn ordinary_user(name: &str) -> Result<User, String> {
    if !is_root() {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let me = std::env::var("USER").unwrap_or_default();
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        return Ok(User {
            name: me,
            uid,
            gid,
            home,
            switch: false,
        });
    }
    if !crate::have("setpriv") {
        return Err("running as an ordinary user needs setpriv (util-linux)".into());
    }
    if id_of("-u", name).is_none() {
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", "--user-group", name])
            .output()
            .map_err(|e| format!("useradd {name}: {e}"))?;
        // Another test may have made it in the meantime: look again.
        if !out.status.success() && id_of("-u", name).is_none() {
            return Err(format!(
                "useradd {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let (Some(uid), Some(gid)) = (id_of("-u", name), id_of("-g", name)) else {
        return Err(format!("user {name} has no uid or gid after useradd"));
    };
    if uid == 0 {
        return Err(format!("user {name} is root"));
    }
    let home = home_of(name).ok_or_else(|| format!("user {name} has no passwd entry"))?;
    Ok(User {
        name: name.to_string(),
        uid,
        gid,
        home,
        switch: true,
    })
}

impl User {
    /// A `Command` that runs `prog` as this user, with the environment a
    /// login gives it (HOME, USER, LOGNAME, and `USER_PATH`: the point of
    /// running as an ordinary user is to miss what root's PATH has).
    pub fn command(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut cmd = if self.switch {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.uid))
                .arg(format!("--regid={}", self.gid))
                .arg("--init-groups")
                .arg("--")
                .arg(prog);
            c
        } else {
            Command::new(prog)
        };
        cmd.env_clear()
            .env("PATH", USER_PATH)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("LC_ALL", "C.UTF-8");
        cmd
    }

    /// Gives `path` (recursively) to this user, so it can write there.
    pub fn own(&self, path: &std::path::Path) -> Result<(), String> {
        if !self.switch {
            return Ok(());
        }
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("chown -R {} {}: {st}", self.name, path.display()))
        }
    }
}
