//! Ownership without root: `--owner UID:GID` and `--fakeroot STATE`.
//!
//! A tree built under `fakeroot -s STATE` has the caller's ownership on
//! disk; the ownership (and, for `mknod`, the file type and device number)
//! that the build asked for lives only in STATE. Reading STATE lets the
//! tools run outside fakeroot. The save file has one line per inode that
//! fakeroot faked (fakeroot 1.31, `faked.c` `save_database`):
//!
//! ```text
//! dev=fe00,ino=10133829,mode=100644,uid=1234,gid=5678,nlink=1,rdev=0
//! ```
//!
//! `dev` is hex, `mode` octal with the type bits, the rest decimal; lines
//! are keyed by (device, inode). Inodes fakeroot never touched are not in
//! it and keep their real attributes.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead};
use std::os::unix::fs::MetadataExt;

/// Why [`Ownership::from_options`] failed. The tools exit 2 (usage) for
/// a malformed `--owner` value and 1 for a state file that cannot be read
/// or parsed, which is bad input like any other file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    Owner(String),
    State(String),
}

impl OptionsError {
    /// The exit code for this error: 2 for a malformed option value, 1
    /// for a bad state file (`filtertool::exit::USAGE` and `FAILURE`,
    /// the coreutils convention; the tools' tests check both).
    pub fn exit_code(&self) -> u8 {
        match self {
            OptionsError::Owner(_) => 2,
            OptionsError::State(_) => 1,
        }
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::Owner(m) | OptionsError::State(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for OptionsError {}

/// The attributes of a file that the list format and the packers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    /// `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `st_rdev` for device nodes.
    pub rdev: u64,
}

impl Stat {
    pub fn from_metadata(m: &std::fs::Metadata) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
        }
    }
}

/// `major()` of a Linux `dev_t` (glibc's `sys/sysmacros.h`, through nix).
/// glibc's 64-bit `dev_t` encoding holds 32-bit majors and minors, so
/// the narrowing loses nothing.
pub fn major(dev: u64) -> u32 {
    nix::sys::stat::major(dev) as u32
}

/// `minor()` of a Linux `dev_t`.
pub fn minor(dev: u64) -> u32 {
    nix::sys::stat::minor(dev) as u32
}

/// `makedev()`.
pub fn makedev(major: u32, minor: u32) -> u64 {
    nix::sys::stat::makedev(u64::from(major), u64::from(minor))
}

/// What fakeroot recorded for one inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faked {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
}

/// A parsed `fakeroot -s` save file.
#[derive(Clone, Debug, Default)]
pub struct FakerootState {
    inodes: HashMap<(u64, u64), Faked>,
}

/// A save file that does not parse.
#[derive(Debug)]
pub struct StateError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for StateError {}

impl FakerootState {
    /// Parses a save file. Unknown keys are ignored (other fakeroot
    /// versions may add some); the five the tools need must be present.
    pub fn parse<R: BufRead>(input: R) -> Result<FakerootState, StateError> {
        let mut inodes = HashMap::new();
        let mut records = crate::records::RecordReader::new(input, crate::Terminator::Newline);
        loop {
            let lineno = records.line() + 1;
            let line = match records.next_record() {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    return Err(StateError {
                        line: 0,
                        message: e.to_string(),
                    })
                }
            };
            if line.is_empty() {
                continue;
            }
            let (key, faked) = parse_state_line(line).map_err(|message| StateError {
                line: lineno,
                message,
            })?;
            inodes.insert(key, faked);
        }
        Ok(FakerootState { inodes })
    }

    pub fn get(&self, dev: u64, ino: u64) -> Option<&Faked> {
        self.inodes.get(&(dev, ino))
    }

    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }
}

fn parse_state_line(line: &[u8]) -> Result<((u64, u64), Faked), String> {
    let text = std::str::from_utf8(line)
        .map_err(|_| format!("not a fakeroot state line: {}", crate::entry::quote(line)))?;
    let bad = || format!("not a fakeroot state line: {}", crate::entry::quote(line));
    let (mut dev, mut ino, mut mode, mut uid, mut gid, mut rdev) =
        (None, None, None, None, None, Some(0u64));
    for pair in text.split(',') {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        let num = |radix| u64::from_str_radix(v, radix).map_err(|_| bad());
        match k {
            "dev" => dev = Some(num(16)?),
            "ino" => ino = Some(num(10)?),
            "mode" => mode = Some(num(8)?),
            "uid" => uid = Some(num(10)?),
            "gid" => gid = Some(num(10)?),
            "rdev" => rdev = Some(num(10)?),
            _ => {}
        }
    }
    let narrow = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok()).ok_or_else(bad);
    let key = (dev.ok_or_else(bad)?, ino.ok_or_else(bad)?);
    let faked = Faked {
        mode: narrow(mode)?,
        uid: narrow(uid)?,
        gid: narrow(gid)?,
        rdev: rdev.ok_or_else(bad)?,
    };
    if crate::entry::FileType::from_mode(faked.mode).is_none() {
        return Err(format!(
            "unknown file type in mode {:o}: {}",
            faked.mode, text
        ));
    }
    Ok((key, faked))
}

/// Where ownership comes from: the file itself, fakeroot's state (as
/// fakeroot itself shows the tree: recorded inodes as recorded, all others
/// owned by 0:0), and/or a forced owner. The state is applied first, then `--owner` overrides the
/// owner of every file (so `--owner 0:0 --fakeroot S` takes types and
/// modes from S and makes everything root's).
#[derive(Clone, Debug, Default)]
pub struct Ownership {
    pub owner: Option<(u32, u32)>,
    pub fakeroot: Option<FakerootState>,
}

impl Ownership {
    /// Builds the rule from the `--owner` and `--fakeroot` option values.
    pub fn from_options(
        owner: Option<&str>,
        fakeroot: Option<&std::path::Path>,
    ) -> Result<Ownership, OptionsError> {
        let owner = owner
            .map(parse_owner)
            .transpose()
            .map_err(OptionsError::Owner)?;
        let state_error = |path: &std::path::Path, e: &dyn fmt::Display| {
            OptionsError::State(format!("{}: {}", path.display(), e))
        };
        let fakeroot = match fakeroot {
            None => None,
            Some(path) => {
                let file = std::fs::File::open(path).map_err(|e| state_error(path, &e))?;
                Some(
                    FakerootState::parse(io::BufReader::new(file))
                        .map_err(|e| state_error(path, &e))?,
                )
            }
        };
        Ok(Ownership { owner, fakeroot })
    }

    /// Builds the rule from clap's typed `--owner` and the `--fakeroot`
    /// path; a state file that cannot be read or parsed fails with exit 1.
    pub fn from_args(
        owner: Option<filtertool::args::Owner>,
        fakeroot: Option<&std::path::Path>,
    ) -> Result<Ownership, filtertool::Failure> {
        let mut rule =
            Ownership::from_options(None, fakeroot).map_err(|e| filtertool::Failure {
                code: e.exit_code(),
                message: e.to_string(),
            })?;
        rule.owner = owner.map(|o| (o.uid, o.gid));
        Ok(rule)
    }

    /// The attributes to record for a file with real attributes `st`.
    pub fn apply(&self, st: &Stat) -> Stat {
        let mut out = *st;
        if let Some(state) = &self.fakeroot {
            match state.get(st.dev, st.ino) {
                Some(f) => {
                    out.mode = f.mode;
                    out.uid = f.uid;
                    out.gid = f.gid;
                    out.rdev = f.rdev;
                }
                // fakeroot shows every inode it never recorded as root's
                // (libfakeroot's stat answers 0:0 for them): a file that
                // debootstrap merely copied is listed only if chowned.
                None => {
                    out.uid = 0;
                    out.gid = 0;
                }
            }
        }
        if let Some((uid, gid)) = self.owner {
            out.uid = uid;
            out.gid = gid;
        }
        out
    }
}

/// Parses `UID:GID` (decimal).
pub fn parse_owner(text: &str) -> Result<(u32, u32), String> {
    filtertool::args::parse_owner(text).map(|o| (o.uid, o.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fakeroot_lines() {
        let text = b"dev=fe00,ino=10133829,mode=100644,uid=1234,gid=5678,nlink=1,rdev=0\n\
                     dev=fe00,ino=7,mode=20644,uid=0,gid=0,nlink=1,rdev=259\n";
        let s = FakerootState::parse(&text[..]).unwrap();
        assert_eq!(s.len(), 2);
        let f = s.get(0xfe00, 10133829).unwrap();
        assert_eq!((f.mode, f.uid, f.gid), (0o100644, 1234, 5678));
        let dev = s.get(0xfe00, 7).unwrap();
        assert_eq!((major(dev.rdev), minor(dev.rdev)), (1, 3));
    }

    #[test]
    fn refuses_bad_state() {
        for bad in [
            &b"garbage\n"[..],
            b"dev=zz,ino=1,mode=100644,uid=0,gid=0\n",
            b"dev=1,ino=1,mode=100644,uid=0\n",
            b"dev=1,ino=1,mode=9,uid=0,gid=0\n",
            b"dev=1,ino=1,mode=100644,uid=0,gid=99999999999\n",
        ] {
            let e = FakerootState::parse(bad).unwrap_err();
            assert_eq!(e.line, 1, "{e}");
        }
    }

    #[test]
    fn owner_overrides_after_state() {
        let s = FakerootState::parse(&b"dev=1,ino=2,mode=40700,uid=5,gid=6,nlink=2,rdev=0\n"[..])
            .unwrap();
        let real = Stat {
            dev: 1,
            ino: 2,
            mode: 0o40755,
            uid: 1000,
            gid: 1000,
            rdev: 0,
        };
        let o = Ownership {
            owner: None,
            fakeroot: Some(s.clone()),
        };
        assert_eq!(o.apply(&real).mode, 0o40700);
        assert_eq!(o.apply(&real).uid, 5);
        let o = Ownership {
            owner: Some((0, 0)),
            fakeroot: Some(s),
        };
        let got = o.apply(&real);
        assert_eq!((got.mode, got.uid, got.gid), (0o40700, 0, 0));
        let other = Stat { ino: 3, ..real };
        assert_eq!(o.apply(&other).mode, 0o40755);
        // Inodes fakeroot never recorded are root's, as fakeroot shows them.
        let o = Ownership {
            owner: None,
            fakeroot: o.fakeroot,
        };
        let got = o.apply(&other);
        assert_eq!((got.mode, got.uid, got.gid), (0o40755, 0, 0));
    }

    #[test]
    fn dev_numbers() {
        for (ma, mi) in [(1, 3), (259, 0), (8, 17), (4095, 1048575)] {
            let d = makedev(ma, mi);
            assert_eq!((major(d), minor(d)), (ma, mi));
        }
        assert_eq!(makedev(1, 3), 0x103);
    }

    #[test]
    fn owner_syntax() {
        assert_eq!(parse_owner("0:0"), Ok((0, 0)));
        assert!(parse_owner("root:root").is_err());
        assert!(parse_owner("1").is_err());
        assert!(parse_owner(":1").is_err());
    }
}
