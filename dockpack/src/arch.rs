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

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use goblin::elf::header as eh;

use crate::tarfmt;

/// What a layer holds at a path.
enum Found {
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    /// The first bytes of a regular file.
    Regular(Vec<u8>),
    Directory,
    Other,
}

enum Hit {
    Found(Found),
    Deleted,
    /// Not here, and a parent is opaque: lower layers are hidden.
    Hidden,
    Absent,
}

fn normalise(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
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

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

fn lookup_in(layer: &mut (PathBuf, File), want: &[u8]) -> Result<Hit> {
    let (path, file) = layer;
    file.rewind()
        .map_err(|e| anyhow!("reading layer {}: {e}", path.display()))?;
    let mut r = BufReader::with_capacity(64 * 1024, &*file);
    let mut hit = Hit::Absent;
    let mut opaque = false;
    tarfmt::walk(
        &mut r,
        |r, n| r.seek_relative(n as i64),
        |h, data| {
            let name = normalise(&h.name);
            let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
                Some(i) => (&name[..i], &name[i + 1..]),
                None => (&name[..0], &name[..]),
            };
            if name == want {
                let found = match h.typeflag {
                    b'0' | 0 | b'7' => {
                        let mut head = vec![0u8; 64];
                        let n = tarfmt::read_full(data, &mut head)?;
                        head.truncate(n);
                        Found::Regular(head)
                    }
                    b'1' => Found::HardLink(h.link.clone()),
                    b'2' => Found::Symlink(h.link.clone()),
                    b'5' => Found::Directory,
                    _ => Found::Other,
                };
                hit = Hit::Found(found);
                return Ok(false);
            }
            if base == b".wh..wh..opq" {
                if is_under(want, dir) {
                    opaque = true;
                }
            } else if let Some(gone) = base.strip_prefix(b".wh.") {
                let mut deleted = dir.to_vec();
                if !deleted.is_empty() {
                    deleted.push(b'/');
                }
                deleted.extend_from_slice(gone);
                if want == deleted || is_under(want, &deleted) {
                    hit = Hit::Deleted;
                }
            }
            Ok(true)
        },
    )
    .map_err(|e| anyhow!("layer {}: {e}", path.display()))?;
    Ok(match hit {
        Hit::Absent if opaque => Hit::Hidden,
        other => other,
    })
}

fn lookup(layers: &mut [(PathBuf, File)], want: &[u8]) -> Result<Option<Found>> {
    for layer in layers.iter_mut().rev() {
        match lookup_in(layer, want)? {
            Hit::Found(f) => return Ok(Some(f)),
            Hit::Deleted | Hit::Hidden => return Ok(None),
            Hit::Absent => {}
        }
    }
    Ok(None)
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
        match lookup(layers, &cand)? {
            None | Some(Found::Other) => return Ok(None),
            Some(Found::Directory) => cur = cand,
            Some(Found::Symlink(target)) => {
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
            Some(Found::HardLink(target)) => {
                // A hard link names another member, from the root.
                hops += 1;
                if hops > 40 {
                    return Ok(None);
                }
                cur.clear();
                push_components(&mut pending, &target);
            }
            Some(Found::Regular(head)) => {
                if !pending.iter().all(|c| c.is_empty() || c == b".") {
                    return Ok(None);
                }
                return Ok(elf_arch(&head));
            }
        }
    }
    Ok(None)
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
}
