//! The search glibc's ld.so does for one program, replayed on files
//! instead of run (glibc 2.36, elf/dl-load.c `_dl_map_object`,
//! elf/dl-deps.c `_dl_map_object_deps`):
//!
//! - dependencies load breadth-first; a `DT_NEEDED` name already satisfied
//!   by a loaded object (by the name it was asked for, its path or its
//!   `DT_SONAME`, the interpreter included) loads nothing new, and a file
//!   found again under another path is the object already loaded;
//! - a name holding `/` is a path; others are searched in: the `DT_RPATH`
//!   of the object that needs the name and of every object that loaded it,
//!   up to the program (only when the needing object has no `DT_RUNPATH`);
//!   the needing object's own `DT_RUNPATH`; then, unless it is marked
//!   `DF_1_NODEFLIB`, what ld.so.cache would hold (the ld.so.conf and
//!   default directories, for files whose `DT_SONAME` is the name); then
//!   the default directories;
//! - `$ORIGIN`, `$LIB`, `$PLATFORM` are expanded; `$ORIGIN` of the program
//!   is its directory after symlinks (the kernel's /proc/self/exe), of a
//!   library the directory of the path it was opened by;
//! - a candidate of another ELF class or machine is skipped; one that is
//!   not ELF, or corrupt, stops the search (ld.so: "invalid ELF header").
//!
//! A dependency cycle between libraries (A needs B, B needs A) is legal
//! for ld.so: each object is loaded once, and a name already loaded is not
//! searched again. So it is here: the walk ends (every object enters the
//! link map once, and the map is finite) and each library is listed once.
//! A cycle looks like bad input, but refusing it would refuse programs
//! that run, so elfdeps only guarantees the walk terminates.
//!
//! Not modelled, on purpose: `LD_LIBRARY_PATH` and `LD_PRELOAD` (the
//! environment of a future run is unknown), `/etc/ld.so.preload`,
//! glibc-hwcaps and legacy hwcap subdirectories (they depend on the CPU
//! that will run the program), and secure-mode rules for setuid programs.
//!
//! The `lddtree` crate was considered: it treats DT_RPATH and DT_RUNPATH
//! alike, does not inherit RPATH along the loading chain, has no `$LIB` or
//! `$PLATFORM`, and resolves sysroot paths with the host's `canonicalize`,
//! which follows an absolute symlink in the tree out to the host.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use bstr::ByteSlice;
use goblin::elf::header::{ET_DYN, ET_EXEC};

use crate::elf::{self, ElfInfo, Probe};
use crate::ldconf::{self, join};
use crate::platform::{self, Abi};
use crate::tree::{Found, Tree};
use filtertool::quote::{quote_path, Quoted};

/// A file read once and shared by every program that needs it.
#[derive(Debug)]
struct Object {
    id: (u64, u64),
    info: ElfInfo,
}

#[derive(Clone, Debug)]
enum Loaded {
    NotElf,
    Elf(Rc<Object>),
}

/// One entry of a program's link map.
struct Mapped {
    obj: Rc<Object>,
    /// The path as the loader opened it (glibc's `l_name`).
    name: Vec<u8>,
    origin: Vec<u8>,
    /// Names this object satisfied.
    names: Vec<Vec<u8>>,
    /// The object whose `DT_NEEDED` loaded this one.
    loader: Option<usize>,
    print: bool,
}

/// What one input needs.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Absolute paths, as the loader opens them; with `--root`, with the
    /// directory part resolved in the tree (no `.` or `..`).
    pub paths: Vec<Vec<u8>>,
    /// (library name, path of the object that needs it).
    pub missing: Vec<(Vec<u8>, Vec<u8>)>,
}

type Want = (bool, u16);

/// A library found: the path it was opened by, and the file.
type Hit = (Vec<u8>, Rc<Object>);

pub struct Resolver {
    tree: Tree,
    /// Where relative paths start: the working directory, or the tree's
    /// top with `--root`.
    base: Vec<u8>,
    /// `--root` was given: printed paths are normalised (see
    /// `resolve_input`).
    in_root: bool,
    conf_dirs: Vec<Vec<u8>>,
    objects: HashMap<Vec<u8>, Result<Loaded, String>>,
    cache_dirs: HashMap<Want, Rc<Vec<Vec<u8>>>>,
    cache_hits: HashMap<(Want, Vec<u8>), Option<Hit>>,
}

impl Resolver {
    /// A resolver for the host (`root` = None) or for the tree at `root`.
    pub fn new(root: Option<&Path>) -> Result<Resolver> {
        let in_root = root.is_some();
        let (tree, base) = match root {
            Some(dir) => {
                let canon = dir
                    .canonicalize()
                    .with_context(|| format!("--root {}", quote_path(dir)))?;
                if !canon.is_dir() {
                    bail!("--root {}: not a directory", quote_path(dir));
                }
                (Tree::new(canon), b"/".to_vec())
            }
            None => {
                let cwd = std::env::current_dir().context("finding the working directory")?;
                (
                    Tree::new("/".into()),
                    cwd.as_os_str().as_encoded_bytes().to_vec(),
                )
            }
        };
        let mut tree = tree;
        let conf_dirs = ldconf::read(&mut tree, b"/etc/ld.so.conf")?;
        Ok(Resolver {
            tree,
            base,
            in_root,
            conf_dirs,
            objects: HashMap::new(),
            cache_dirs: HashMap::new(),
            cache_hits: HashMap::new(),
        })
    }

    /// The input name as an absolute path, without `.` components or
    /// repeated slashes (POSIX path resolution ignores both, so the name
    /// means the same file): `./bin/hello` under `--root` is
    /// `/bin/hello`, the name messages show. `..` is left to the
    /// resolver, as a symlinked parent decides what it means.
    fn to_abs(&self, p: &[u8]) -> Vec<u8> {
        let joined = if p.first() == Some(&b'/') {
            p.to_vec()
        } else {
            join(&self.base, p)
        };
        let mut out = Vec::with_capacity(joined.len());
        for comp in joined.split(|&b| b == b'/') {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            out.push(b'/');
            out.extend_from_slice(comp);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    fn load(&mut self, found: &Found) -> Result<Loaded, String> {
        if let Some(r) = self.objects.get(&found.canonical) {
            return r.clone();
        }
        let r = read_object(&self.tree.host(&found.canonical));
        self.objects.insert(found.canonical.clone(), r.clone());
        r
    }

    /// Opens `path` (absolute, in-tree): `None` when there is no regular
    /// file there.
    fn open(&mut self, path: &[u8]) -> Option<Result<Loaded, String>> {
        let found = self.tree.resolve(path).ok()?;
        if !found.meta.is_file() {
            return None;
        }
        Some(self.load(&found))
    }

    /// One candidate of a search, checked as ld.so's `open_verify` does.
    /// With `cache_name`, as ldconfig would have cached it instead: files
    /// it cannot read are skipped and the soname must be the name.
    fn candidate(
        &mut self,
        path: &[u8],
        want: Want,
        cache_name: Option<&[u8]>,
        needed_by: &[u8],
    ) -> Result<Option<Rc<Object>>> {
        let why = match self.open(path) {
            None => return Ok(None),
            Some(Ok(Loaded::Elf(o))) => {
                if (o.info.class64, o.info.machine) != want {
                    return Ok(None);
                }
                if let Some(name) = cache_name {
                    let soname_ok = o.info.soname.as_deref().is_none_or(|s| s == name);
                    if !soname_ok || o.info.e_type != ET_DYN {
                        return Ok(None);
                    }
                }
                if o.info.e_type != ET_DYN {
                    "not a shared object".to_string()
                } else {
                    return Ok(Some(o));
                }
            }
            Some(_) if cache_name.is_some() => return Ok(None),
            Some(Ok(Loaded::NotElf)) => "not an ELF file".to_string(),
            Some(Err(why)) => why,
        };
        bail!(
            "{}: {why} (the loader stops here looking for a library needed by {})",
            Quoted(path),
            Quoted(needed_by)
        )
    }

    /// The libraries one input file needs.
    pub fn resolve_input(&mut self, input: &[u8]) -> Result<Outcome> {
        let raw = self.to_abs(input);
        let found = self
            .tree
            .resolve(&raw)
            .map_err(|m| anyhow!("{}: {m}", Quoted(input)))?;
        let mut out = Outcome::default();
        // Directories, devices, FIFOs: not ELF files, nothing needed.
        if !found.meta.is_file() {
            return Ok(out);
        }
        let obj = match self.load(&found) {
            Err(why) => bail!("{}: {why}", Quoted(input)),
            Ok(Loaded::NotElf) => return Ok(out),
            Ok(Loaded::Elf(o)) => o,
        };
        if !matches!(obj.info.e_type, ET_EXEC | ET_DYN)
            || (obj.info.interp.is_none() && obj.info.needed.is_empty())
        {
            return Ok(out);
        }
        let want = (obj.info.class64, obj.info.machine);
        let abi = platform::abi(want.1, want.0);
        let mut names = vec![raw.clone()];
        names.extend(obj.info.soname.clone());
        let mut map = vec![Mapped {
            obj: obj.clone(),
            name: raw.clone(),
            origin: parent(&found.canonical),
            names,
            loader: None,
            print: false,
        }];

        // The loader is in the link map before any dependency, so a
        // DT_NEEDED of its soname (libc needs ld-linux-x86-64.so.2) is it.
        let rtld = match &obj.info.interp {
            Some(i) => Some((self.to_abs(i), true)),
            None => abi.interp.map(|i| (i.as_bytes().to_vec(), false)),
        };
        if let Some((path, from_interp)) = rtld {
            match self.open(&path) {
                Some(Ok(Loaded::Elf(o))) if (o.info.class64, o.info.machine) == want => {
                    let mut names = vec![path.clone()];
                    names.extend(o.info.soname.clone());
                    map.push(Mapped {
                        obj: o,
                        origin: parent(&path),
                        name: path,
                        names,
                        loader: None,
                        print: from_interp,
                    });
                }
                None if from_interp => out.missing.push((path, raw.clone())),
                Some(Err(why)) if from_interp => {
                    bail!("{}: interpreter {}: {why}", Quoted(input), Quoted(&path))
                }
                Some(_) if from_interp => bail!(
                    "{}: interpreter {}: not an ELF file for this machine",
                    Quoted(input),
                    Quoted(&path)
                ),
                _ => {}
            }
        }

        let mut i = 0;
        while let Some(m) = map.get(i) {
            let obj = m.obj.clone();
            for needed in &obj.info.needed {
                let name = if needed.contains(&b'$') {
                    match expand(needed, &map[i].origin, &abi) {
                        Some(n) => n,
                        None => {
                            out.missing.push((needed.clone(), map[i].name.clone()));
                            continue;
                        }
                    }
                } else {
                    needed.clone()
                };
                if let Some(j) = map.iter().position(|m| {
                    m.names.contains(&name) || m.obj.info.soname.as_ref() == Some(&name)
                }) {
                    map[j].print |= j != 0;
                    continue;
                }
                match self.search(&map, i, &name, want, &abi)? {
                    Some((path, o)) => {
                        if let Some(j) = map.iter().position(|m| m.obj.id == o.id) {
                            map[j].names.push(name);
                            map[j].print |= j != 0;
                            continue;
                        }
                        map.push(Mapped {
                            obj: o,
                            origin: parent(&path),
                            name: path,
                            names: vec![name],
                            loader: Some(i),
                            print: true,
                        });
                    }
                    None => out.missing.push((name, map[i].name.clone())),
                }
            }
            i += 1;
        }
        // With --root, a printed path is joined with DIR by its consumer
        // (`install -D "DIR/$f"`), so a `..` from `$ORIGIN/..` or a
        // DT_RUNPATH like `/../../opt/l` would climb out of DIR: print the
        // directory part resolved in the tree, the file by its own name.
        // Without --root the path is printed as ld.so built it (its
        // `l_name`), `..` and all, which is what ldd prints
        // (`/usr/bin/../lib/libh.so` for RUNPATH `$ORIGIN/../lib`), and
        // tests/ldd.rs compares with ldd.
        for m in map.into_iter().filter(|m| m.print) {
            let name = if self.in_root {
                self.tree
                    .printed_name(&m.name)
                    .map_err(|why| anyhow!("{}: {why}", Quoted(&m.name)))?
            } else {
                m.name
            };
            out.paths.push(name);
        }
        Ok(out)
    }

    fn search(
        &mut self,
        map: &[Mapped],
        i: usize,
        name: &[u8],
        want: Want,
        abi: &Abi,
    ) -> Result<Option<Hit>> {
        let Some(who) = map.get(i) else {
            return Ok(None);
        };
        if name.contains(&b'/') {
            let p = self.to_abs(name);
            return Ok(self.candidate(&p, want, None, &who.name)?.map(|o| (p, o)));
        }
        if who.obj.info.runpath.is_none() {
            // The loader indices strictly decrease, so this ends.
            let mut l = Some(i);
            while let Some(m) = l.and_then(|k| map.get(k)) {
                if let Some(rp) = &m.obj.info.rpath {
                    if let Some(hit) =
                        self.search_path(rp, &m.origin, name, want, abi, &who.name)?
                    {
                        return Ok(Some(hit));
                    }
                }
                l = m.loader;
            }
        }
        if let Some(rp) = &who.obj.info.runpath {
            if let Some(hit) = self.search_path(rp, &who.origin, name, want, abi, &who.name)? {
                return Ok(Some(hit));
            }
        }
        if who.obj.info.nodeflib {
            return Ok(None);
        }
        if let Some(hit) = self.cache_lookup(name, want, abi)? {
            return Ok(Some(hit));
        }
        for dir in abi.default_dirs() {
            let p = join(&dir, name);
            if let Some(o) = self.candidate(&p, want, None, &who.name)? {
                return Ok(Some((p, o)));
            }
        }
        Ok(None)
    }

    fn search_path(
        &mut self,
        list: &[u8],
        origin: &[u8],
        name: &[u8],
        want: Want,
        abi: &Abi,
        needed_by: &[u8],
    ) -> Result<Option<Hit>> {
        for elem in list.split(|&b| b == b':') {
            let Some(mut dir) = expand(elem, origin, abi) else {
                continue;
            };
            while dir.len() > 1 && dir.last() == Some(&b'/') {
                dir.pop();
            }
            // glibc fillin_rpath: empty elements are skipped.
            if dir.is_empty() {
                continue;
            }
            let p = join(&self.to_abs(&dir), name);
            if let Some(o) = self.candidate(&p, want, None, needed_by)? {
                return Ok(Some((p, o)));
            }
        }
        Ok(None)
    }

    /// What ld.so.cache would answer: ldconfig caches files named like
    /// libraries (`lib*.so*`, `ld-*.so*`), under their soname, from the
    /// ld.so.conf directories and then the default ones.
    fn cache_lookup(&mut self, name: &[u8], want: Want, abi: &Abi) -> Result<Option<Hit>> {
        if !(name.starts_with(b"lib") || name.starts_with(b"ld-")) || name.find(".so").is_none() {
            return Ok(None);
        }
        let key = (want, name.to_vec());
        if let Some(hit) = self.cache_hits.get(&key) {
            return Ok(hit.clone());
        }
        let dirs = match self.cache_dirs.get(&want) {
            Some(d) => d.clone(),
            None => {
                let mut dirs: Vec<Vec<u8>> = Vec::new();
                let mut seen = Vec::new();
                for d in self.conf_dirs.iter().cloned().chain(abi.default_dirs()) {
                    if let Ok(f) = self.tree.resolve(&d) {
                        if f.meta.is_dir() && !seen.contains(&f.canonical) {
                            seen.push(f.canonical);
                            dirs.push(d);
                        }
                    }
                }
                let dirs = Rc::new(dirs);
                self.cache_dirs.insert(want, dirs.clone());
                dirs
            }
        };
        let mut hit = None;
        for dir in dirs.iter() {
            let p = join(dir, name);
            if let Some(o) = self.candidate(&p, want, Some(name), b"")? {
                hit = Some((p, o));
                break;
            }
        }
        self.cache_hits.insert(key, hit.clone());
        Ok(hit)
    }
}

fn read_object(host: &Path) -> Result<Loaded, String> {
    // O_NONBLOCK: a FIFO swapped in after the lookup must not hang us.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(host)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Ok(Loaded::NotElf);
    }
    match elf::probe(&file, meta.len())? {
        Probe::NotElf => Ok(Loaded::NotElf),
        Probe::Elf(info) => Ok(Loaded::Elf(Rc::new(Object {
            id: (meta.dev(), meta.ino()),
            info,
        }))),
    }
}

/// The directory part of an absolute path.
fn parent(p: &[u8]) -> Vec<u8> {
    match p.rfind_byte(b'/') {
        Some(0) | None => b"/".to_vec(),
        Some(i) => p.get(..i).unwrap_or_default().to_vec(),
    }
}

/// Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (and the `${...}` forms) as
/// glibc's `_dl_dst_substitute` does; `None` when a value is unknown (the
/// loader then drops the search path element). Other `$` text is kept.
pub fn expand(s: &[u8], origin: &[u8], abi: &Abi) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some((&c, tail)) = rest.split_first() {
        if c == b'$' {
            if let Some((name, used)) = dst_name(tail) {
                match name {
                    b"ORIGIN" => out.extend_from_slice(origin),
                    b"LIB" => out.extend_from_slice(&abi.lib()),
                    _ => out.extend_from_slice(abi.platform?.as_bytes()),
                }
                rest = tail.get(used..).unwrap_or_default();
                continue;
            }
        }
        out.push(c);
        rest = tail;
    }
    Some(out)
}

/// The dynamic string token at the start of `s` (after the `$`), and how
/// many bytes it takes. glibc's `is_dst`: unbraced, the name must end the
/// string or be followed by `/`.
fn dst_name(s: &[u8]) -> Option<(&'static [u8], usize)> {
    for name in [&b"ORIGIN"[..], b"LIB", b"PLATFORM"] {
        if let Some(r) = s.strip_prefix(b"{").and_then(|r| r.strip_prefix(name)) {
            if r.first() == Some(&b'}') {
                return Some((name, name.len() + 2));
            }
        }
        if let Some(r) = s.strip_prefix(name) {
            if r.is_empty() || r.first() == Some(&b'/') {
                return Some((name, name.len()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_expansion() {
        let abi = platform::abi(goblin::elf::header::EM_X86_64, true);
        let e = |s: &str| expand(s.as_bytes(), b"/o", &abi).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(e("$ORIGIN/../lib").as_deref(), Some("/o/../lib"));
        assert_eq!(e("${ORIGIN}x").as_deref(), Some("/ox"));
        assert_eq!(e("$ORIGINx").as_deref(), Some("$ORIGINx"));
        assert_eq!(e("/usr/$LIB").as_deref(), Some("/usr/lib/x86_64-linux-gnu"));
        assert_eq!(e("/p/$PLATFORM").as_deref(), Some("/p/x86_64"));
        let other = platform::abi(9999, true);
        assert_eq!(expand(b"/p/$PLATFORM", b"/o", &other), None);
    }
}
