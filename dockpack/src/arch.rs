//! The image's architecture from the program it runs.
//!
//! An image built on an x86-64 host from arm64 binaries must say
//! `arm64`, or engines refuse or misrun it. So the program that Cmd or
//! Entrypoint names is found in the layer stack the way an engine's
//! union would show it (top layer first, whiteouts and opaque
//! directories hide lower layers, symlinks in every component followed,
//! at most 40 as the kernel's `ELOOP` limit), and the `e_machine` of its
//! ELF header (read with goblin) maps to the OCI `GOARCH` name
//! (image-spec config.md points at Go's `$GOARCH` values).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Seek};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use filtertool::quote::quote_path;
use goblin::elf::header as eh;

use crate::tarfmt;

/// What a layer holds at a path.
#[derive(Clone)]
enum Found {
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    /// A regular file whose data starts at this offset in the layer.
    Regular(u64),
    Directory,
    Other,
}

enum Hit<'a> {
    Found(&'a Found),
    Deleted,
    /// Not here, and a parent is opaque: lower layers are hidden.
    Hidden,
    Absent,
}

fn normalise(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

/// One layer's members, read in a single pass over its headers: the
/// lookup of a path with many components (`/a/../a/../…/init`) is then
/// one hash probe per component instead of one walk of the layer each
/// (a 300k-member layer took over 15 s for 40 `..`).
struct Index {
    members: HashMap<Vec<u8>, Found>,
    /// Names a `.wh.` file deletes (this layer and below).
    whiteouts: HashSet<Vec<u8>>,
    /// Directories holding `.wh..wh..opq`.
    opaque: HashSet<Vec<u8>>,
}

impl Index {
    fn read(layer: &mut (PathBuf, File)) -> Result<Index> {
        let (path, file) = layer;
        file.rewind()
            .map_err(|e| anyhow!("reading layer {}: {e}", quote_path(path)))?;
        let mut r = BufReader::with_capacity(64 * 1024, &*file);
        let mut index = Index {
            members: HashMap::new(),
            whiteouts: HashSet::new(),
            opaque: HashSet::new(),
        };
        tarfmt::walk(
            &mut r,
            |r, n| {
                let n =
                    i64::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
                r.seek_relative(n)
            },
            |h, _| {
                let name = normalise(&h.name);
                let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&name[..i], &name[i + 1..]),
                    None => (&name[..0], &name[..]),
                };
                if base == b".wh..wh..opq" {
                    index.opaque.insert(dir.to_vec());
                } else if let Some(gone) = base.strip_prefix(b".wh.") {
                    let mut deleted = dir.to_vec();
                    if !deleted.is_empty() {
                        deleted.push(b'/');
                    }
                    deleted.extend_from_slice(gone);
                    index.whiteouts.insert(deleted);
                }
                let found = match h.typeflag {
                    b'0' | 0 | b'7' => Found::Regular(h.data_offset),
                    b'1' => Found::HardLink(h.link.clone()),
                    b'2' => Found::Symlink(h.link.clone()),
                    b'5' => Found::Directory,
                    _ => Found::Other,
                };
                // The first member of a name is what a single walk used
                // to stop at.
                index.members.entry(name).or_insert(found);
                Ok(true)
            },
        )
        .map_err(|e| anyhow!("layer {}: {e}", quote_path(path)))?;
        Ok(index)
    }

    fn lookup(&self, want: &[u8]) -> Hit<'_> {
        if let Some(f) = self.members.get(want) {
            return Hit::Found(f);
        }
        // The directories above `want`, the root ("") first.
        let mut above: Vec<&[u8]> = Vec::new();
        if !want.is_empty() {
            above.push(b"");
        }
        above.extend(
            want.iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'/')
                .map(|(i, _)| &want[..i]),
        );
        // `want` or a directory above it deleted here; else a directory
        // above it made opaque here.
        if self.whiteouts.contains(want) || above.iter().any(|p| self.whiteouts.contains(*p)) {
            return Hit::Deleted;
        }
        if above.iter().any(|p| self.opaque.contains(*p)) {
            return Hit::Hidden;
        }
        Hit::Absent
    }
}

/// The layer stack, bottom first, each layer indexed on first use.
struct Stack<'a> {
    layers: &'a mut [(PathBuf, File)],
    indexes: Vec<Option<Index>>,
}

impl Stack<'_> {
    /// What the union shows at `want`, and the layer it comes from.
    /// Layers are indexed top first, and only as far down as a lookup
    /// needs.
    fn lookup(&mut self, want: &[u8]) -> Result<Option<(usize, Found)>> {
        for i in (0..self.layers.len()).rev() {
            let index = match &mut self.indexes[i] {
                Some(index) => index,
                slot => slot.insert(Index::read(&mut self.layers[i])?),
            };
            match index.lookup(want) {
                Hit::Found(f) => return Ok(Some((i, f.clone()))),
                Hit::Deleted | Hit::Hidden => return Ok(None),
                Hit::Absent => {}
            }
        }
        Ok(None)
    }

    /// The first bytes of the regular file at `offset` in layer `i`.
    fn head(&self, i: usize, offset: u64) -> Result<Vec<u8>> {
        let (path, file) = &self.layers[i];
        let mut head = vec![0u8; 64];
        let mut n = 0;
        while n < head.len() {
            match file.read_at(&mut head[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow!("reading layer {}: {e}", quote_path(path))),
            }
        }
        head.truncate(n);
        Ok(head)
    }
}

fn push_components(stack: &mut Vec<Vec<u8>>, path: &[u8]) {
    for c in path.split(|&b| b == b'/').rev() {
        stack.push(c.to_vec());
    }
}

/// The `GOARCH` of the ELF program at absolute path `program` in the
/// layer stack (bottom first), or `None` when it is missing, not ELF, or
/// not an absolute path (a bare name would need `$PATH`, which the engine
/// resolves at run time).
pub fn detect(layers: &mut [(PathBuf, File)], program: &str) -> Result<Option<&'static str>> {
    if !program.starts_with('/') {
        return Ok(None);
    }
    let count = layers.len();
    let mut stack = Stack {
        layers,
        indexes: (0..count).map(|_| None).collect(),
    };
    let mut pending = Vec::new();
    push_components(&mut pending, program.as_bytes());
    let mut cur: Vec<u8> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            let keep = cur.iter().rposition(|&b| b == b'/').unwrap_or(0);
            cur.truncate(keep);
            continue;
        }
        let mut cand = cur.clone();
        if !cand.is_empty() {
            cand.push(b'/');
        }
        cand.extend_from_slice(&c);
        let (layer, found) = match stack.lookup(&cand)? {
            None => return Ok(None),
            Some(hit) => hit,
        };
        match found {
            Found::Other => return Ok(None),
            Found::Directory => cur = cand,
            Found::Symlink(target) => {
                hops += 1;
                if hops > 40 {
                    return Ok(None);
                }
                // Relative to the link's directory unless absolute.
                if target.first() == Some(&b'/') {
                    cur.clear();
                }
                push_components(&mut pending, &target);
            }
            Found::HardLink(target) => {
                // A hard link names another member, from the root.
                hops += 1;
                if hops > 40 {
                    return Ok(None);
                }
                cur.clear();
                push_components(&mut pending, &target);
            }
            Found::Regular(offset) => {
                if !pending.iter().all(|c| c.is_empty() || c == b".") {
                    return Ok(None);
                }
                return Ok(elf_arch(&stack.head(layer, offset)?));
            }
        }
    }
    Ok(None)
}

/// The `GOARCH` names `--arch` accepts: those [`elf_arch`] maps an ELF
/// machine to, all of them Go's (`go tool dist list`), which image-spec
/// config.md names as the values of `architecture`. Another name (`sparc`,
/// a typo) would give an image no engine runs.
pub const GOARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x",
];

/// Checks an `--arch` value against [`GOARCHES`].
pub fn check_goarch(name: &str) -> Result<(), String> {
    if GOARCHES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "--arch {}: not a GOARCH name this tool maps (one of {})",
            filtertool::quote::quote(name.as_bytes()),
            GOARCHES.join(", ")
        ))
    }
}

/// Maps an ELF header to a `GOARCH` name.
pub fn elf_arch(head: &[u8]) -> Option<&'static str> {
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let h = goblin::elf::Elf::parse_header(head).ok()?;
    let class64 = h.e_ident[eh::EI_CLASS] == eh::ELFCLASS64;
    let little = h.e_ident[eh::EI_DATA] == eh::ELFDATA2LSB;
    Some(match h.e_machine {
        eh::EM_X86_64 => "amd64",
        eh::EM_AARCH64 => "arm64",
        eh::EM_386 => "386",
        eh::EM_ARM => "arm",
        eh::EM_PPC64 if little => "ppc64le",
        eh::EM_PPC64 => "ppc64",
        eh::EM_S390 if class64 => "s390x",
        eh::EM_RISCV if class64 => "riscv64",
        eh::EM_MIPS if class64 && little => "mips64le",
        eh::EM_MIPS if class64 => "mips64",
        eh::EM_MIPS if little => "mipsle",
        eh::EM_MIPS => "mips",
        258 => "loong64", // EM_LOONGARCH
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_machine_is_accepted() {
        for m in [
            eh::EM_X86_64,
            eh::EM_AARCH64,
            eh::EM_386,
            eh::EM_ARM,
            eh::EM_PPC64,
            eh::EM_S390,
            eh::EM_RISCV,
            eh::EM_MIPS,
            258,
        ] {
            for (class, data) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
                let mut h = vec![0u8; 64];
                h[..4].copy_from_slice(b"\x7fELF");
                h[4] = class;
                h[5] = data;
                h[6] = 1;
                let bytes = m.to_le_bytes();
                if data == 1 {
                    h[18..20].copy_from_slice(&bytes);
                } else {
                    h[18] = bytes[1];
                    h[19] = bytes[0];
                }
                if let Some(a) = elf_arch(&h) {
                    assert!(check_goarch(a).is_ok(), "{a}");
                }
            }
        }
        assert!(check_goarch("sparc").is_err());
        assert!(check_goarch("").is_err());
    }

    #[test]
    fn maps_machines() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = eh::ELFCLASS64;
        h[5] = eh::ELFDATA2LSB;
        h[6] = 1;
        h[18] = eh::EM_AARCH64 as u8;
        assert_eq!(elf_arch(&h), Some("arm64"));
        h[18] = eh::EM_X86_64 as u8;
        assert_eq!(elf_arch(&h), Some("amd64"));
        assert_eq!(elf_arch(b"#!/bin/sh\n"), None);
    }

    /// A member for [`layer_of`]: name, kind, data or link target.
    type Spec<'a> = (&'a [u8], tarfmt::Kind, &'a [u8]);

    fn layer_of(members: &[Spec<'_>]) -> (PathBuf, File) {
        use std::io::Write;
        let mut out = Vec::new();
        for (name, kind, body) in members {
            let link: &[u8] = if *kind == tarfmt::Kind::Symlink {
                body
            } else {
                b""
            };
            let size = if *kind == tarfmt::Kind::Regular {
                body.len() as u64
            } else {
                0
            };
            let m = tarfmt::Member {
                name,
                kind: *kind,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size,
                mtime: 0,
                link,
                major: 0,
                minor: 0,
            };
            tarfmt::write_header(&mut out, &m).unwrap();
            if size > 0 {
                out.extend_from_slice(body);
                out.extend_from_slice(&[0u8; tarfmt::BLOCK][..tarfmt::padding(size)]);
            }
        }
        tarfmt::write_end(&mut out).unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&out).unwrap();
        (PathBuf::from("test.tar"), f)
    }

    #[test]
    fn whiteouts_opaque_directories_and_links_across_layers() {
        use tarfmt::Kind::{Directory as D, Regular as R, Symlink as S};
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = eh::ELFCLASS64;
        elf[5] = eh::ELFDATA2LSB;
        elf[6] = 1;
        elf[18] = eh::EM_AARCH64 as u8;
        let base = || layer_of(&[(b"bin/", D, b""), (b"bin/x", R, &elf)]);
        let cases: &[(&[Spec<'_>], &str, Option<&str>)] = &[
            (&[(b"etc/", D, b"")], "/bin/x", Some("arm64")),
            (&[(b"bin/", D, b""), (b"bin/.wh.x", R, b"")], "/bin/x", None),
            (&[(b".wh.bin", R, b"")], "/bin/x", None),
            (
                &[(b"bin/", D, b""), (b"bin/.wh..wh..opq", R, b"")],
                "/bin/x",
                None,
            ),
            (&[(b"l", S, b"bin/x")], "/l", Some("arm64")),
            (&[(b"l", S, b"/bin/../bin/./x")], "/l", Some("arm64")),
            (&[(b"d", S, b"bin")], "/d/../d/x", Some("arm64")),
            (&[(b"l", S, b"l")], "/l", None),
        ];
        for (top, path, want) in cases {
            let mut layers = vec![base(), layer_of(top)];
            assert_eq!(
                detect(&mut layers, path).unwrap(),
                *want,
                "{path} over {top:?}"
            );
        }
    }
}
