//! Finds the kernel to boot: `--kernel`, else `$KVMRUN_KERNEL`,
//! else `/boot/vmlinuz-$(uname -r)`, else the newest `/boot/vmlinuz-*` in
//! version order. The running kernel is often not in /boot (a container
//! host, or these machines: 6.18 running, 6.1 installed), hence the
//! fallback. Where nothing is readable the error says how to get one: Debian
//! ships kernels in `linux-image-<arch>`, and Ubuntu installs
//! `/boot/vmlinuz-*` with mode 0600, readable by root only.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use filtertool::quote::quote_path;

/// Where distributions install kernels.
pub const BOOT_DIR: &str = "/boot";

/// The running kernel's release (`uname -r`), if it can be read.
pub fn running_release() -> Option<String> {
    let s = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Debian's kernel package for this architecture, for the error message.
fn package() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux-image-arm64",
        "x86" => "linux-image-686",
        _ => "linux-image-amd64",
    }
}

/// Picks the kernel. `explicit` is `--kernel`, `env` is `$KVMRUN_KERNEL`
/// (ignored when empty), `release` the running kernel's, `boot` /boot.
pub fn resolve(
    explicit: Option<&Path>,
    env: Option<&OsStr>,
    release: Option<&str>,
    boot: &Path,
) -> anyhow::Result<PathBuf> {
    let code = filtertool::exit::RUNNER_FAILED;
    if let Some(p) = explicit {
        return check(p)
            .map(|()| p.to_path_buf())
            .map_err(|why| filtertool::fail(code, format!("kernel {}: {why}", quote_path(p))));
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        let p = Path::new(p);
        return check(p).map(|()| p.to_path_buf()).map_err(|why| {
            filtertool::fail(
                code,
                format!("kernel {} (from $KVMRUN_KERNEL): {why}", quote_path(p)),
            )
        });
    }
    let mut candidates = Vec::new();
    if let Some(r) = release {
        candidates.push(boot.join(format!("vmlinuz-{r}")));
    }
    let mut others: Vec<PathBuf> = match fs::read_dir(boot) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().as_encoded_bytes().starts_with(b"vmlinuz-"))
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    others.sort_by(|a, b| {
        version_cmp(
            b.as_os_str().as_encoded_bytes(),
            a.as_os_str().as_encoded_bytes(),
        )
    });
    let first = candidates.first().cloned();
    candidates.extend(others.into_iter().filter(|p| Some(p) != first.as_ref()));

    let mut unreadable = None;
    for c in &candidates {
        match check(c) {
            Ok(()) => return Ok(c.clone()),
            Err(why) if c.exists() && unreadable.is_none() => unreadable = Some((c.clone(), why)),
            Err(_) => {}
        }
    }
    let how = format!(
        "pass --kernel PATH or set $KVMRUN_KERNEL, or install one (apt-get install {})",
        package()
    );
    Err(match unreadable {
        Some((p, why)) => {
            let mode = fs::metadata(&p)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0);
            filtertool::fail(
                code,
                format!(
                    "no readable kernel: {}: {why} (mode {mode:04o}; Ubuntu installs kernels readable by root only: sudo chmod 0644 {}/vmlinuz-*, or {how})",
                    quote_path(&p),
                    boot.display()
                ),
            )
        }
        None => filtertool::fail(
            code,
            format!(
                "no kernel to boot: no --kernel, no $KVMRUN_KERNEL, no {}/vmlinuz-*; {how}",
                boot.display()
            ),
        ),
    })
}

/// A kernel is usable when it is a regular file we can open.
fn check(p: &Path) -> Result<(), String> {
    open_checked(p).map(|_| ())
}

/// Opens the kernel to boot, checked as [`resolve`] checks it: the
/// descriptor is what qemu reads (as `/proc/self/fd/N`), so the file that
/// was checked is the one booted even if the path changes in between.
pub fn open(p: &Path) -> anyhow::Result<File> {
    open_checked(p).map_err(|why| {
        filtertool::fail(
            filtertool::exit::RUNNER_FAILED,
            format!("kernel {}: {why}", quote_path(p)),
        )
    })
}

/// The open is `O_NONBLOCK`, so a FIFO with no writer is refused at once
/// instead of hanging the open (open(2)); on a regular file the flag does
/// nothing.
fn open_checked(p: &Path) -> Result<File, String> {
    let why = |e: std::io::Error| {
        let s = e.to_string();
        match s.find(" (os error ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    };
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(p)
        .map_err(why)?;
    let m = f.metadata().map_err(why)?;
    if !m.is_file() {
        return Err(format!(
            "not a regular file (it is {})",
            filtertool::file_type_name(&m)
        ));
    }
    Ok(f)
}

/// Compares like `sort -V` on the parts that matter for kernel names: runs
/// of digits compare as numbers (`6.1.0-9` < `6.1.0-10`), the rest bytewise.
pub fn version_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let x = trim_zeros(&a[si..i]);
            let y = trim_zeros(&b[sj..j]);
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let mut v: Vec<&[u8]> = vec![
            b"vmlinuz-6.1.0-10-amd64",
            b"vmlinuz-6.1.0-9-amd64",
            b"vmlinuz-6.10.0-1-amd64",
            b"vmlinuz-5.19.0-1-amd64",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            [
                &b"vmlinuz-5.19.0-1-amd64"[..],
                b"vmlinuz-6.1.0-9-amd64",
                b"vmlinuz-6.1.0-10-amd64",
                b"vmlinuz-6.10.0-1-amd64"
            ]
        );
    }

    fn boot_with(names: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for n in names {
            fs::write(d.path().join(n), b"kernel").unwrap();
        }
        d
    }

    #[test]
    fn order_of_resolution() {
        let b = boot_with(&[
            "vmlinuz-6.1.0-9-amd64",
            "vmlinuz-6.1.0-10-amd64",
            "config-6.1.0-10-amd64",
        ]);
        let boot = b.path();
        // The running release first, when it is there.
        let got = resolve(None, None, Some("6.1.0-9-amd64"), boot).unwrap();
        assert_eq!(got, boot.join("vmlinuz-6.1.0-9-amd64"));
        // Else the newest by version, not by bytes.
        let got = resolve(None, None, Some("6.18.0"), boot).unwrap();
        assert_eq!(got, boot.join("vmlinuz-6.1.0-10-amd64"));
        // The environment beats /boot, --kernel beats both.
        let env = boot.join("vmlinuz-6.1.0-9-amd64");
        let got = resolve(None, Some(env.as_os_str()), Some("6.18.0"), boot).unwrap();
        assert_eq!(got, env);
        let k = boot.join("config-6.1.0-10-amd64");
        assert_eq!(
            resolve(Some(&k), Some(env.as_os_str()), None, boot).unwrap(),
            k
        );
    }

    #[test]
    fn missing_kernels_say_how_to_get_one() {
        let b = boot_with(&[]);
        let e = resolve(None, None, Some("6.18.0"), b.path()).unwrap_err();
        let msg = filtertool::one_line(&e);
        assert!(msg.contains("apt-get install linux-image-"), "{msg}");
        assert!(msg.contains("--kernel"), "{msg}");
        assert_eq!(filtertool::failure_code(&e), Some(125));
        let e = resolve(
            Some(Path::new("/nonexistent/vmlinuz")),
            None,
            None,
            b.path(),
        )
        .unwrap_err();
        let msg = filtertool::one_line(&e);
        assert!(
            msg.starts_with("kernel \"/nonexistent/vmlinuz\": "),
            "{msg}"
        );
    }
}
