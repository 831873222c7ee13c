//! Every ELF file in /usr/bin and /usr/lib/x86_64-linux-gnu of this
//! machine: elfdeps must resolve exactly what ldd (the real loader, in
//! trace mode) resolves, linux-vdso left out. ldd lists the interpreter
//! only when some object needs it by soname; elfdeps always lists a
//! program's PT_INTERP (the kernel needs it), so that one path is added to
//! ldd's side when ldd lists anything. Files ldd calls "not a dynamic
//! executable" or "statically linked" must give nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

fn elf_files(dir: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return v };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        let mut magic = [0u8; 4];
        if fs::File::open(&p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && &magic == b"\x7fELF"
        {
            v.push(p);
        }
    }
    v.sort();
    v
}

/// PT_INTERP as readelf reports it.
fn interp(p: &PathBuf) -> Option<String> {
    let out = Command::new("readelf").arg("-lW").arg(p).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let i = text.find("[Requesting program interpreter: ")?;
    let rest = &text[i + "[Requesting program interpreter: ".len()..];
    Some(rest[..rest.find(']')?].to_string())
}

/// ldd's answer per file, for many files at once.
fn ldd(files: &[PathBuf]) -> BTreeMap<PathBuf, BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for chunk in files.chunks(200) {
        let out = Command::new("ldd").args(chunk).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut cur: Option<PathBuf> = None;
        for line in text.lines() {
            if !line.starts_with('\t') {
                let name = line.trim_end_matches(':');
                cur = chunk.iter().find(|p| p.to_str() == Some(name)).cloned();
                if let Some(c) = &cur {
                    all.insert(c.clone(), BTreeSet::new());
                }
                continue;
            }
            let Some(c) = &cur else { continue };
            let l = line.trim();
            if l.contains("linux-vdso")
                || l.contains("not a dynamic executable")
                || l.contains("statically linked")
            {
                continue;
            }
            let (name, rhs) = match l.split_once(" => ") {
                Some((n, r)) => (n, r),
                None => (l, l),
            };
            let path = rhs.split(" (0x").next().unwrap_or(rhs);
            let entry = if path == "not found" {
                format!("{name} not found")
            } else {
                path.to_string()
            };
            all.get_mut(c).unwrap().insert(entry);
        }
    }
    all
}

#[test]
fn same_as_ldd_on_this_machine() {
    if Command::new("ldd").arg("--version").output().is_err() {
        eprintln!("skipping: no ldd on this machine");
        return;
    }
    let mut files = elf_files("/usr/bin");
    files.extend(elf_files("/usr/lib/x86_64-linux-gnu"));
    assert!(files.len() > 100, "only {} ELF files found", files.len());
    let expected = ldd(&files);
    let mut resolver = elfdeps::Resolver::new(None).unwrap();
    let mut diffs = Vec::new();
    for f in &files {
        let Some(want) = expected.get(f) else {
            diffs.push(format!("{}: ldd printed nothing parseable", f.display()));
            continue;
        };
        let mut want = want.clone();
        if !want.is_empty() {
            want.extend(interp(f));
        }
        let got: BTreeSet<String> = match resolver.resolve_input(f.as_os_str().as_encoded_bytes()) {
            Ok(o) => o
                .paths
                .iter()
                .map(|p| String::from_utf8_lossy(p).to_string())
                .chain(
                    o.missing
                        .iter()
                        .map(|(n, _)| format!("{} not found", String::from_utf8_lossy(n))),
                )
                .collect(),
            Err(e) => {
                diffs.push(format!("{}: elfdeps failed: {e:#}", f.display()));
                continue;
            }
        };
        if got != want {
            diffs.push(format!(
                "{}: elfdeps has {:?}, ldd has {:?}",
                f.display(),
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>()
            ));
        }
    }
    eprintln!("compared {} ELF files with ldd", files.len());
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
