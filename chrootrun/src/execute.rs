//! Starting CMD inside the container, and saying precisely why it could not
//! start, with the exit codes of `docker run` and `env` (126 cannot execute,
//! 127 not found). `execve` reports a missing `#!` or ELF interpreter as a
//! missing command (ENOENT), so the file is looked at the way the kernel
//! would before blaming the command.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use filtertool::exit::{CANNOT_EXECUTE, NOT_FOUND, RUNNER_FAILED};
use filtertool::fail;

/// PATH inside the container when its environment has none (Debian's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command as the child will start it.
#[derive(Debug, Clone)]
pub struct Program {
    /// Never empty.
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// The container's PATH (from its environment, else [`DEFAULT_PATH`]).
    pub path: Vec<u8>,
    /// DIR as the user named it, for messages.
    pub dir: String,
}

/// Replaces the process with the program; returns only why it could not.
pub fn exec(p: &Program) -> anyhow::Error {
    let Some(name) = p.argv.first().map(|a| a.as_bytes()) else {
        return fail(RUNNER_FAILED, "no command");
    };
    if name.contains(&b'/') {
        return attempt(p, name);
    }
    // execvp(3)'s search, but with the container's PATH, inside the container.
    for dir in p.path.split(|&b| b == b':') {
        let mut cand = dir.to_vec();
        if !cand.is_empty() {
            cand.push(b'/');
        }
        cand.extend_from_slice(name);
        if fs::metadata(OsStr::from_bytes(&cand)).is_ok() {
            return attempt(p, &cand);
        }
    }
    fail(
        NOT_FOUND,
        format!(
            "{}: not found in PATH={} inside {}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(&p.path),
            p.dir
        ),
    )
}

fn attempt(p: &Program, path: &[u8]) -> anyhow::Error {
    let Ok(c) = CString::new(path) else {
        return fail(RUNNER_FAILED, "the command holds a NUL byte");
    };
    let errno = match nix::unistd::execve(&c, &p.argv, &p.env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    explain(Path::new(OsStr::from_bytes(path)), errno, &p.dir)
}

enum Interp {
    Script(PathBuf),
    Elf(PathBuf),
}

/// Reads the `#!` line (the kernel reads 256 bytes, binfmt_script) or the
/// ELF PT_INTERP of `path`.
fn interpreter(path: &Path) -> Option<Interp> {
    let mut f = File::open(path).ok()?;
    let mut head = [0u8; 256];
    let n = f.read(&mut head).ok()?;
    let head = &head[..n];
    if let Some(rest) = head.strip_prefix(b"#!") {
        let rest = rest.iter().skip_while(|b| **b == b' ' || **b == b'\t');
        let name: Vec<u8> = rest
            .take_while(|b| !b" \t\n\0".contains(b))
            .copied()
            .collect();
        return (!name.is_empty()).then(|| Interp::Script(PathBuf::from(OsStr::from_bytes(&name))));
    }
    if head.starts_with(b"\x7fELF") {
        return elf_interp(&f, head).map(Interp::Elf);
    }
    None
}

fn int(b: &[u8], off: usize, len: usize, le: bool) -> Option<u64> {
    let s = b.get(off..off.checked_add(len)?)?;
    let mut v = 0u64;
    for i in 0..len {
        let byte = if le { s[len - 1 - i] } else { s[i] };
        v = (v << 8) | u64::from(byte);
    }
    Some(v)
}

fn elf_interp(f: &File, head: &[u8]) -> Option<PathBuf> {
    let wide = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match head.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let (phoff, entsize, num) = if wide {
        (
            int(head, 32, 8, le)?,
            int(head, 54, 2, le)?,
            int(head, 56, 2, le)?,
        )
    } else {
        (
            int(head, 28, 4, le)?,
            int(head, 42, 2, le)?,
            int(head, 44, 2, le)?,
        )
    };
    let mut ph = vec![0u8; usize::try_from(entsize).ok()?.min(64)];
    for i in 0..num.min(256) {
        f.read_exact_at(&mut ph, phoff.checked_add(i.checked_mul(entsize)?)?)
            .ok()?;
        if int(&ph, 0, 4, le)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if wide {
            (int(&ph, 8, 8, le)?, int(&ph, 32, 8, le)?)
        } else {
            (int(&ph, 4, 4, le)?, int(&ph, 16, 4, le)?)
        };
        let mut name = vec![0u8; usize::try_from(size.min(4096)).ok()?];
        f.read_exact_at(&mut name, off).ok()?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        name.truncate(end);
        return Some(PathBuf::from(OsStr::from_bytes(&name)));
    }
    None
}

/// The exit code and one-line reason for `execve(path)` failing with `errno`.
pub fn explain(path: &Path, errno: Errno, dir: &str) -> anyhow::Error {
    let shown = path.display();
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => {
            if fs::metadata(path).is_err() {
                if fs::symlink_metadata(path).is_ok() {
                    return fail(
                        NOT_FOUND,
                        format!("{shown}: a dangling symbolic link inside {dir}"),
                    );
                }
                return fail(NOT_FOUND, format!("{shown}: not found inside {dir}"));
            }
            // The file is there: its interpreter is not (up to 4 levels of #!).
            let mut file = path.to_path_buf();
            for _ in 0..4 {
                match interpreter(&file) {
                    Some(Interp::Script(i)) if fs::metadata(&i).is_err() => {
                        return fail(
                            CANNOT_EXECUTE,
                            format!(
                                "{shown}: its #! interpreter {} does not exist inside {dir}",
                                i.display()
                            ),
                        );
                    }
                    Some(Interp::Elf(i)) if fs::metadata(&i).is_err() => {
                        return fail(
                            CANNOT_EXECUTE,
                            format!(
                                "{shown}: its ELF interpreter {} does not exist inside {dir} (copy the loader and libraries in)",
                                i.display()
                            ),
                        );
                    }
                    Some(Interp::Script(i)) => file = i,
                    _ => break,
                }
            }
            fail(
                CANNOT_EXECUTE,
                format!("{shown}: cannot execute: {}", errno.desc()),
            )
        }
        Errno::EACCES => {
            let why = match fs::metadata(path) {
                Ok(md) if md.is_dir() => "is a directory".to_string(),
                Ok(md) if !md.is_file() => "not a regular file".to_string(),
                Ok(md) if md.permissions().mode() & 0o111 == 0 => "not executable (no x permission)".to_string(),
                Ok(_) => match interpreter(path) {
                    Some(Interp::Script(i)) => format!("permission denied (is its #! interpreter {} executable?)", i.display()),
                    _ => "permission denied (a noexec mount, or a directory on the way that cannot be searched)".to_string(),
                },
                Err(_) => "permission denied".to_string(),
            };
            fail(CANNOT_EXECUTE, format!("{shown}: {why}"))
        }
        Errno::ENOEXEC => fail(
            CANNOT_EXECUTE,
            format!(
                "{shown}: not an executable format this kernel runs (a script needs a #! line)"
            ),
        ),
        other => fail(
            CANNOT_EXECUTE,
            format!("{shown}: cannot execute: {}", other.desc()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn code(e: &anyhow::Error) -> u8 {
        filtertool::failure_code(e).unwrap()
    }

    #[test]
    fn missing_interpreters_are_named() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path().join("script");
        fs::write(&s, "#!  /nonexistent/sh -e\necho\n").unwrap();
        let e = explain(&s, Errno::ENOENT, "DIR");
        assert_eq!(code(&e), 126);
        assert!(
            e.to_string()
                .contains("#! interpreter /nonexistent/sh does not exist inside DIR"),
            "{e}"
        );
        // A real ELF (this test binary) whose interpreter exists: generic 126.
        let me = std::env::current_exe().unwrap();
        if let Some(Interp::Elf(i)) = interpreter(&me) {
            assert!(i.is_absolute(), "{}", i.display());
        }
    }

    #[test]
    fn elf_interpreter_is_read_from_the_program_headers() {
        let t = tempfile::tempdir().unwrap();
        // A minimal ELF64 LE header with one PT_INTERP program header.
        let mut b = vec![0u8; 200];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        b[72..80].copy_from_slice(&150u64.to_le_bytes()); // p_offset
        b[96..104].copy_from_slice(&14u64.to_le_bytes()); // p_filesz
        b[150..164].copy_from_slice(b"/lib/ld-x.so\0\0");
        let p = t.path().join("prog");
        fs::write(&p, &b).unwrap();
        let e = explain(&p, Errno::ENOENT, "DIR");
        assert_eq!(code(&e), 126);
        assert!(
            e.to_string()
                .contains("ELF interpreter /lib/ld-x.so does not exist"),
            "{e}"
        );
    }

    #[test]
    fn not_found_directory_and_no_x_bit() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            code(&explain(&t.path().join("nope"), Errno::ENOENT, "D")),
            127
        );
        symlink("/nowhere", t.path().join("dangling")).unwrap();
        let e = explain(&t.path().join("dangling"), Errno::ENOENT, "D");
        assert_eq!(code(&e), 127);
        assert!(e.to_string().contains("dangling"));
        let e = explain(t.path(), Errno::EACCES, "D");
        assert_eq!(code(&e), 126);
        assert!(e.to_string().ends_with("is a directory"), "{e}");
        let f = t.path().join("plain");
        fs::write(&f, "x").unwrap();
        let e = explain(&f, Errno::EACCES, "D");
        assert!(e.to_string().contains("no x permission"), "{e}");
        assert_eq!(code(&explain(&f, Errno::ENOEXEC, "D")), 126);
    }
}
