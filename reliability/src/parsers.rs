//! One function per parser that reads untrusted bytes, shared by the
//! cargo-fuzz targets in `../fuzz` and the stable mutation test
//! (`tests/mutate.rs`), so both drive exactly the same entry points.
//! Each must return, whatever the input: a panic is the defect (no tool
//! may panic on any input: docs/DESIGN.md, "Exit codes and messages").

use std::io::{Read, Write};

/// List records: the line parser (`split_line`, `parse_fields`,
/// `Input::parse`), archive member names, and a whole list through the
/// order-checking reader, with LF and with NUL terminators. A parsed line
/// must write back to a line that parses to the same fields.
pub fn list(data: &[u8]) {
    use filelist::entry::{parse_fields, split_line, write_line, Input};
    use filelist::records::Terminator;
    if let Ok((name, fields)) = split_line(data) {
        let mut out = Vec::new();
        if write_line(&mut out, name, &fields, Terminator::Nul).is_ok() {
            let again = out.strip_suffix(b"\0").unwrap_or(&out);
            let reparsed = split_line(again);
            assert!(
                matches!(reparsed, Ok((_, ref f)) if *f == fields),
                "a written line does not parse back: {data:?} -> {out:?}"
            );
        }
    }
    let _ = parse_fields(data);
    let _ = Input::parse(data).name().len();
    let _ = filelist::archive::member_name(data);
    for term in [Terminator::Newline, Terminator::Nul] {
        let mut reader = filelist::sorted::ListReader::new(data, term, "fuzz");
        for _ in 0..100_000 {
            match reader.next_record() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// A `fakeroot -s` state file.
pub fn fakeroot_state(data: &[u8]) {
    if let Ok(state) = filelist::owner::FakerootState::parse(data) {
        let _ = state.len();
    }
}

/// `--owner UID:GID` and `SOURCE_DATE_EPOCH`.
pub fn options(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = filelist::owner::parse_owner(text);
        let _ = filelist::epoch::parse(Some(text));
        let _ = dockpack::reference::parse(text);
    }
}

/// A layer tar as `dockpack image` reads it (headers, pax, GNU long
/// names, sizes), every member's data read through.
pub fn tar(data: &[u8]) {
    let mut r = data;
    let _ = dockpack::tarfmt::walk(
        &mut r,
        |r, n| {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > r.len() {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            *r = &r[n..];
            Ok(())
        },
        |_h, body| {
            let _ = std::io::copy(&mut body.take(1 << 20), &mut std::io::sink());
            Ok(true)
        },
    );
}

/// Concatenated newc archives as kvmrun reads an initrd before booting it
/// (`mkinitrd::newc::Reader`: headers, bounded names, data skipped or
/// read), one archive after another with the NUL padding between them
/// skipped, as the kernel's unpacker does.
pub fn newc(data: &[u8]) {
    use std::io::Read;
    let mut rest = data;
    // Each archive consumes at least one 110-byte header, so the number
    // of rounds is bounded by the input's length.
    while !rest.is_empty() {
        let mut r = mkinitrd::newc::Reader::new(rest);
        let mut whole = false;
        loop {
            match r.next_header() {
                Ok(Some(h)) => {
                    // Read half of the members' data, skip the rest.
                    if h.ino % 2 == 0 {
                        let mut sink = Vec::new();
                        if (&mut r).take(1 << 20).read_to_end(&mut sink).is_err() {
                            break;
                        }
                    }
                }
                Ok(None) => {
                    whole = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if !whole {
            return;
        }
        let after = r.into_inner();
        let skip = after.iter().take_while(|&&b| b == 0).count();
        if after.len() == rest.len() {
            return;
        }
        rest = &after[skip..];
    }
}

/// An initrd as kvmrun measures it before a boot: newc archives, NUL
/// padding and gzip, zstd or lz4 pieces, decoded (libzstd,
/// compress::lz4legacy). The limit is small, so a bomb ends at it.
pub fn initrd(data: &[u8]) {
    let _ = kvmrun::memory::measure_reader(data, 1 << 20);
}

/// ELF headers: dockpack's architecture detection and elfdeps' probe
/// (program headers, dynamic section, strings), the latter on a memfd.
pub fn elf(data: &[u8]) {
    let _ = dockpack::arch::elf_arch(data);
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let Ok(fd) = memfd_create(c"fuzz-elf", MFdFlags::MFD_CLOEXEC) else {
        return;
    };
    let mut file = std::fs::File::from(fd);
    if file.write_all(data).is_ok() {
        let _ = elfdeps::elf::probe(&file, data.len() as u64);
    }
}

/// Dynamic string tokens (`$ORIGIN`, `$LIB`, `$PLATFORM`) and
/// ld.so.conf glob patterns: input split at the first NUL.
pub fn ldso(data: &[u8]) {
    let (a, b) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let abi = elfdeps::platform::abi(62, true);
    let _ = elfdeps::resolve::expand(a, b, &abi);
    let _ = elfdeps::ldconf::fnmatch(a, b);
    let _ = elfdeps::ldconf::join(a, b);
}

/// Not a parser but hand-written crypto: fileids' multi-message SHA-256
/// (`fileids::sha256x`) against `sha2`. The first byte picks the number
/// of messages (1-4) and how far each step may go; the rest is cut into
/// the messages at lengths its bytes give. They are hashed together as
/// fileids does, a message leaving its lane when fewer than 64 bytes are
/// left, and every digest must equal `sha2`'s.
pub fn sha256x(data: &[u8]) {
    use fileids::sha256x::{compress, finish, INIT};
    use sha2::{Digest as _, Sha256};
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let lanes = 1 + usize::from(control & 3);
    let step = 64 * (1 + usize::from(control >> 2));
    let mut messages: Vec<&[u8]> = Vec::with_capacity(lanes);
    for _ in 1..lanes {
        let cut = rest
            .first()
            .map_or(0, |&b| usize::from(b) * 7)
            .min(rest.len());
        let (message, tail) = rest.split_at(cut);
        messages.push(message);
        rest = tail;
    }
    messages.push(rest);
    let mut states = vec![INIT; messages.len()];
    let mut pos = vec![0usize; messages.len()];
    loop {
        let active: Vec<usize> = (0..messages.len())
            .filter(|&i| messages[i].len() - pos[i] >= 64)
            .collect();
        if active.is_empty() {
            break;
        }
        let mut lane_states: Vec<[u32; 8]> = active.iter().map(|&i| states[i]).collect();
        let slices: Vec<&[u8]> = active
            .iter()
            .map(|&i| &messages[i][pos[i]..messages[i].len().min(pos[i] + step)])
            .collect();
        let blocks = compress(&mut lane_states, &slices);
        assert!(blocks > 0, "compress made no progress");
        for (&i, state) in active.iter().zip(lane_states) {
            states[i] = state;
            pos[i] += blocks * 64;
        }
    }
    for ((message, state), p) in messages.iter().zip(states).zip(pos) {
        let ours = finish(state, &message[p..], message.len() as u64);
        let theirs: [u8; 32] = Sha256::digest(message).into();
        assert_eq!(
            ours,
            theirs,
            "SHA-256 differs for a {}-byte message",
            message.len()
        );
    }
}

/// A harness: takes any bytes, returns only if the parser did not panic.
pub type Harness = fn(&[u8]);

/// Every parser by name: the fuzz targets' and the seed corpus' names.
pub const TARGETS: &[(&str, Harness)] = &[
    ("list", list),
    ("fakeroot_state", fakeroot_state),
    ("options", options),
    ("tar", tar),
    ("newc", newc),
    ("initrd", initrd),
    ("elf", elf),
    ("ldso", ldso),
    ("sha256x", sha256x),
];
