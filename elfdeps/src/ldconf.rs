//! The library directories of `/etc/ld.so.conf`, read as ldconfig reads it
//! (glibc elf/ldconfig.c, `parse_conf`): `#` starts a comment, `include
//! PATTERN...` reads the files the glob patterns match (a relative pattern
//! is relative to the including file's directory; matches sorted, as
//! glob(3) sorts them), `hwcap` lines are obsolete and skipped, any other
//! line is a directory. A directory listed twice (by any spelling that
//! resolves to the same place) counts once, at its first spelling, as
//! ldconfig ignores a directory it has already seen.
//!
//! ld.so itself reads only `/etc/ld.so.cache`, which ldconfig builds from
//! these directories. elfdeps reads the configuration instead of the cache:
//! a tree's cache may be stale or missing (debootstrap trees, sysroots) and
//! its format is glibc-internal. ldconfig has no defence against a file that
//! includes itself; here an include loop is an error naming the chain.

use std::fs::File;
use std::io::Read;

use anyhow::{bail, Context, Result};
use bstr::ByteSlice;

use crate::tree::{Miss, Tree};
use filtertool::quote::{quote, Quoted};

/// The largest configuration file read.
const MAX_CONF: u64 = 1 << 20;
/// How deep includes may nest.
const MAX_DEPTH: usize = 64;

/// The directories `path` (an in-tree path) lists, in order.
pub fn read(tree: &mut Tree, path: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut p = Parser {
        tree,
        stack: Vec::new(),
        dirs: Vec::new(),
        seen: Vec::new(),
    };
    p.file(path)?;
    Ok(p.dirs)
}

struct Parser<'a> {
    tree: &'a mut Tree,
    /// Files being read: (canonical, as named).
    stack: Vec<(Vec<u8>, Vec<u8>)>,
    dirs: Vec<Vec<u8>>,
    /// Canonical paths of `dirs`.
    seen: Vec<Vec<u8>>,
}

impl Parser<'_> {
    fn file(&mut self, path: &[u8]) -> Result<()> {
        let found = match self.tree.resolve(path) {
            Ok(f) => f,
            Err(Miss::NotFound | Miss::NotDir) => return Ok(()),
            Err(e) => bail!("{}: {e}", Quoted(path)),
        };
        if let Some(at) = self.stack.iter().position(|(c, _)| *c == found.canonical) {
            let mut chain: Vec<String> = self
                .stack
                .get(at..)
                .unwrap_or_default()
                .iter()
                .map(|(_, named)| quote(named))
                .collect();
            chain.push(quote(path));
            bail!("ld.so.conf include loop: {}", chain.join(" -> "));
        }
        if self.stack.len() >= MAX_DEPTH {
            bail!("{}: includes nested too deep", Quoted(path));
        }
        if !found.meta.is_file() {
            return Ok(());
        }
        let mut text = Vec::new();
        File::open(self.tree.host(&found.canonical))
            .and_then(|f| f.take(MAX_CONF + 1).read_to_end(&mut text))
            .with_context(|| format!("reading {}", Quoted(path)))?;
        if text.len() as u64 > MAX_CONF {
            bail!("{}: larger than {MAX_CONF} bytes", Quoted(path));
        }
        self.stack.push((found.canonical, path.to_vec()));
        let here = match path.rfind_byte(b'/') {
            Some(0) | None => &b"/"[..],
            Some(i) => path.get(..i).unwrap_or_default(),
        };
        for line in text.lines() {
            let line = match line.find_byte(b'#') {
                Some(i) => line.get(..i).unwrap_or_default(),
                None => line,
            }
            .trim_with(|c| c.is_ascii_whitespace());
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = keyword(line, b"include") {
                for pat in rest.fields_with(|c| c.is_ascii_whitespace()) {
                    let pat = if pat.first() == Some(&b'/') {
                        pat.to_vec()
                    } else {
                        join(here, pat)
                    };
                    for m in glob(self.tree, &pat) {
                        self.file(&m)?;
                    }
                }
                continue;
            }
            if keyword(line, b"hwcap").is_some() {
                continue;
            }
            let mut dir = line;
            while dir.len() > 1 && dir.last() == Some(&b'/') {
                dir = dir.get(..dir.len() - 1).unwrap_or_default();
            }
            if dir.first() != Some(&b'/') {
                continue;
            }
            let canonical = match self.tree.resolve(dir) {
                Ok(f) if f.meta.is_dir() => f.canonical,
                _ => continue,
            };
            if !self.seen.contains(&canonical) {
                self.seen.push(canonical);
                self.dirs.push(dir.to_vec());
            }
        }
        self.stack.pop();
        Ok(())
    }
}

fn keyword<'a>(line: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(word)?;
    rest.first()
        .is_some_and(u8::is_ascii_whitespace)
        .then_some(rest)
}

/// `dir/name`, without doubling the slash of `/`.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The in-tree paths matching an absolute glob pattern, sorted.
fn glob(tree: &mut Tree, pattern: &[u8]) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = vec![Vec::new()];
    for comp in pattern.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if !comp.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            for f in &mut found {
                f.push(b'/');
                f.extend_from_slice(comp);
            }
            continue;
        }
        let mut next = Vec::new();
        for base in &found {
            let dir = if base.is_empty() {
                b"/".to_vec()
            } else {
                base.clone()
            };
            let Ok(names) = tree.read_dir(&dir) else {
                continue;
            };
            for n in names {
                if fnmatch(comp, &n) {
                    let mut p = base.clone();
                    p.push(b'/');
                    p.extend_from_slice(&n);
                    next.push(p);
                }
            }
        }
        found = next;
    }
    found.retain(|f| !f.is_empty());
    found.sort();
    found
}

/// glob(3)'s matching of one name: `*`, `?`, `[...]` (with `!`/`^` and
/// ranges), `\` escapes; a leading `.` is matched only by a literal `.`.
pub fn fnmatch(p: &[u8], n: &[u8]) -> bool {
    if n.first() == Some(&b'.') && p.first() != Some(&b'.') {
        return false;
    }
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(p.get(pi..).unwrap_or_default(), c) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (c == b'[').then_some(1),
            },
            Some(b'\\') => (p.get(pi + 1) == Some(&c)).then_some(2),
            Some(&pc) => (pc == c).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p.get(pi..).is_some_and(|r| r.iter().all(|&c| c == b'*'))
}

/// Matches `c` against the bracket expression at the start of `p`:
/// (matched, length of the expression), or `None` if it is not closed.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &a = p.get(i)?;
        if a == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        match (p.get(i + 1), p.get(i + 2)) {
            (Some(b'-'), Some(&b)) if b != b']' => {
                hit |= a <= c && c <= b;
                i += 3;
            }
            _ => {
                hit |= a == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        assert!(fnmatch(b"*.conf", b"libc.conf"));
        assert!(!fnmatch(b"*.conf", b".hidden.conf"));
        assert!(!fnmatch(b"*.conf", b"libc.conf~"));
        assert!(fnmatch(b"[a-c]?.conf", b"b1.conf"));
        assert!(!fnmatch(b"[!a-c]?.conf", b"b1.conf"));
        assert!(fnmatch(b"a*b*c", b"aXXbYYc"));
        assert!(fnmatch(b"[", b"["));
    }
}
