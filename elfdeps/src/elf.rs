//! The few parts of an ELF file the dynamic loader reads: the header, the
//! program headers, `PT_INTERP` and the `PT_DYNAMIC` entries (`DT_NEEDED`,
//! `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH`, `DT_FLAGS_1`).
//!
//! Like ld.so this goes through program headers only: section headers can
//! be stripped or lie, and the loader never looks at them. Only the bytes
//! needed are read (`pread`), so a 100 MB library costs a few small reads.
//! goblin decodes the header and the program headers; every offset and
//! count taken from the file is checked against the file's size first and
//! no read is larger than the caps below, so a hostile or truncated file
//! gives an error, never a panic, a loop or a huge allocation. The dynamic
//! entries (two words each) are decoded here: goblin's `Dynamic::parse`
//! also derives a `DynamicInfo` with arithmetic on untrusted values we do
//! not need.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::dynamic::{
    DF_1_NODEFLIB, DT_FLAGS_1, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB,
};
use goblin::elf::header::{EI_CLASS, ELFCLASS32, ELFCLASS64, ELFMAG, SELFMAG};
use goblin::elf::program_header::{ProgramHeader, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use goblin::elf::Elf;

/// The longest string (interpreter, library name, search path) accepted.
const MAX_STRING: u64 = 64 * 1024;
/// The largest `PT_DYNAMIC` read; real ones hold well under 100 entries.
const MAX_DYNAMIC: u64 = 1 << 20;
/// The most `DT_NEEDED` entries one object may have.
const MAX_NEEDED: usize = 4096;

/// What the loader needs to know about one ELF file.
#[derive(Debug, Clone)]
pub struct ElfInfo {
    pub class64: bool,
    pub machine: u16,
    pub e_type: u16,
    pub interp: Option<Vec<u8>>,
    pub needed: Vec<Vec<u8>>,
    pub soname: Option<Vec<u8>>,
    /// `DT_RPATH`, already dropped when there is a `DT_RUNPATH` (glibc
    /// elf/get-dynamic-info.h: "If both RUNPATH and RPATH are given, the
    /// latter is ignored").
    pub rpath: Option<Vec<u8>>,
    pub runpath: Option<Vec<u8>>,
    /// `DF_1_NODEFLIB`: no ld.so.cache and no default directories for this
    /// object's own needs.
    pub nodeflib: bool,
}

/// The outcome of reading a file that may or may not be ELF.
#[derive(Debug)]
pub enum Probe {
    NotElf,
    Elf(ElfInfo),
}

/// Reads `file` (of `len` bytes). `Err` is a message saying what is wrong
/// with an ELF file (truncated, corrupt); a file without the ELF magic is
/// `NotElf`, not an error.
pub fn probe(file: &File, len: u64) -> Result<Probe, String> {
    let mut head = [0u8; 64];
    let n = read_up_to(file, &mut head, 0).map_err(|e| format!("reading the ELF header: {e}"))?;
    let head = head.get(..n).unwrap_or_default();
    if head.get(..SELFMAG) != Some(&ELFMAG[..]) {
        return Ok(Probe::NotElf);
    }
    let need = match head.get(EI_CLASS) {
        Some(&ELFCLASS32) => 52,
        Some(&ELFCLASS64) => 64,
        _ => return Err("unknown ELF class".into()),
    };
    if n < need {
        return Err("truncated ELF header".into());
    }
    let hdr = Elf::parse_header(head).map_err(|e| format!("bad ELF header: {e}"))?;
    let container = hdr
        .container()
        .map_err(|e| format!("bad ELF header: {e}"))?;
    let endian = hdr
        .endianness()
        .map_err(|e| format!("bad ELF header: {e}"))?;
    let ctx = Ctx::new(container, endian);
    let class64 = container == Container::Big;
    let mut info = ElfInfo {
        class64,
        machine: hdr.e_machine,
        e_type: hdr.e_type,
        interp: None,
        needed: Vec::new(),
        soname: None,
        rpath: None,
        runpath: None,
        nodeflib: false,
    };
    if hdr.e_phnum == 0 {
        return Ok(Probe::Elf(info));
    }
    let entsize: u64 = if class64 { 56 } else { 32 };
    if u64::from(hdr.e_phentsize) != entsize {
        return Err(format!(
            "program header size {} (expected {entsize})",
            hdr.e_phentsize
        ));
    }
    if hdr.e_phnum == u16::MAX {
        return Err("PN_XNUM program header count is not supported".into());
    }
    let table = read_range(
        file,
        len,
        hdr.e_phoff,
        u64::from(hdr.e_phnum) * entsize,
        "program headers",
    )?;
    let phdrs = ProgramHeader::parse(&table, 0, usize::from(hdr.e_phnum), ctx)
        .map_err(|e| format!("program headers: {e}"))?;

    if let Some(ph) = phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        if ph.p_filesz > MAX_STRING {
            return Err("PT_INTERP is too long".into());
        }
        let raw = read_range(file, len, ph.p_offset, ph.p_filesz, "PT_INTERP")?;
        let s = raw.split(|&b| b == 0).next().unwrap_or_default();
        if s.is_empty() {
            return Err("empty PT_INTERP".into());
        }
        info.interp = Some(s.to_vec());
    }

    let Some(dynph) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(Probe::Elf(info));
    };
    if dynph.p_filesz > MAX_DYNAMIC {
        return Err("PT_DYNAMIC is too large".into());
    }
    let dynamic = read_range(file, len, dynph.p_offset, dynph.p_filesz, "PT_DYNAMIC")?;
    let word = if class64 { 8 } else { 4 };
    let little = endian == Endian::Little;
    let (mut strtab, mut strsz) = (None, None);
    let (mut needed, mut soname, mut rpath, mut runpath) = (Vec::new(), None, None, None);
    for entry in dynamic.chunks_exact(2 * word) {
        let (tag, val) = entry.split_at(word);
        let (tag, val) = (read_word(tag, little), read_word(val, little));
        match tag {
            DT_NULL => break,
            DT_NEEDED => {
                if needed.len() >= MAX_NEEDED {
                    return Err("too many DT_NEEDED entries".into());
                }
                needed.push(val);
            }
            DT_SONAME => soname = Some(val),
            DT_RPATH => rpath = Some(val),
            DT_RUNPATH => runpath = Some(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_FLAGS_1 => info.nodeflib = val & DF_1_NODEFLIB != 0,
            _ => {}
        }
    }
    if needed.is_empty() && soname.is_none() && rpath.is_none() && runpath.is_none() {
        return Ok(Probe::Elf(info));
    }
    let addr = strtab.ok_or("DT_STRTAB is missing")?;
    // DT_STRTAB is an address: the loader reads it from the mapped
    // segments, so map it back to a file offset through PT_LOAD.
    let off = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .find_map(|p| {
            let d = addr.checked_sub(p.p_vaddr)?;
            if d < p.p_filesz {
                p.p_offset.checked_add(d)
            } else {
                None
            }
        })
        .ok_or("DT_STRTAB is outside the loadable segments")?;
    let strings = Strings {
        file,
        len,
        off,
        size: strsz,
    };
    info.needed = needed
        .iter()
        .map(|&i| strings.get(i))
        .collect::<Result<_, _>>()?;
    info.soname = soname.map(|i| strings.get(i)).transpose()?;
    info.runpath = runpath.map(|i| strings.get(i)).transpose()?;
    if info.runpath.is_none() {
        info.rpath = rpath.map(|i| strings.get(i)).transpose()?;
    }
    Ok(Probe::Elf(info))
}

/// The dynamic string table, read string by string.
struct Strings<'a> {
    file: &'a File,
    len: u64,
    off: u64,
    size: Option<u64>,
}

impl Strings<'_> {
    fn get(&self, idx: u64) -> Result<Vec<u8>, String> {
        let room = match self.size {
            Some(size) if idx >= size => {
                return Err(format!("string offset {idx} is past DT_STRSZ"));
            }
            Some(size) => size - idx,
            None => u64::MAX,
        };
        let start = self
            .off
            .checked_add(idx)
            .filter(|&s| s < self.len)
            .ok_or("string offset is past the end of the file")?;
        let limit = (self.len - start).min(MAX_STRING).min(room);
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while (out.len() as u64) < limit {
            let want = (limit - out.len() as u64).min(256) as usize;
            let buf = chunk.get_mut(..want).unwrap_or_default();
            let n = read_up_to(self.file, buf, start + out.len() as u64)
                .map_err(|e| format!("reading the string table: {e}"))?;
            let got = buf.get(..n).unwrap_or_default();
            if got.is_empty() {
                break;
            }
            if let Some(z) = got.iter().position(|&b| b == 0) {
                out.extend_from_slice(got.get(..z).unwrap_or_default());
                return Ok(out);
            }
            out.extend_from_slice(got);
        }
        Err("unterminated or overlong string in the dynamic string table".into())
    }
}

fn read_word(bytes: &[u8], little: bool) -> u64 {
    let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
    if little {
        bytes.iter().rev().fold(0, fold)
    } else {
        bytes.iter().fold(0, fold)
    }
}

/// Reads `size` bytes at `off`, after checking they are inside the file.
fn read_range(file: &File, len: u64, off: u64, size: u64, what: &str) -> Result<Vec<u8>, String> {
    match off.checked_add(size) {
        Some(end) if end <= len => {}
        _ => return Err(format!("{what} past the end of the file (truncated?)")),
    }
    let mut buf = vec![0; usize::try_from(size).map_err(|_| format!("{what} too large"))?];
    file.read_exact_at(&mut buf, off)
        .map_err(|e| format!("reading {what}: {e}"))?;
    Ok(buf)
}

/// Fills as much of `buf` as the file has from `off`.
fn read_up_to(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        match file.read_at(rest, off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
