//! What the loader of each machine calls things: the multiarch triplet
//! (Debian's library directories, also `$LIB`), the `$PLATFORM` value (the
//! kernel's `AT_PLATFORM`), and the ABI's program interpreter, used for
//! shared libraries given as input: they have no `PT_INTERP`, ldd runs them
//! under this loader, and any program that loads them brings it.

use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64};

#[derive(Clone, Copy, Debug, Default)]
pub struct Abi {
    pub triplet: Option<&'static str>,
    pub platform: Option<&'static str>,
    pub interp: Option<&'static str>,
    pub class64: bool,
}

pub fn abi(machine: u16, class64: bool) -> Abi {
    let (triplet, platform, interp) = match (machine, class64) {
        (EM_X86_64, true) => (
            "x86_64-linux-gnu",
            Some("x86_64"),
            "/lib64/ld-linux-x86-64.so.2",
        ),
        (EM_386, false) => ("i386-linux-gnu", Some("i686"), "/lib/ld-linux.so.2"),
        (EM_AARCH64, true) => (
            "aarch64-linux-gnu",
            Some("aarch64"),
            "/lib/ld-linux-aarch64.so.1",
        ),
        (EM_ARM, false) => (
            "arm-linux-gnueabihf",
            Some("v7l"),
            "/lib/ld-linux-armhf.so.3",
        ),
        (EM_RISCV, true) => (
            "riscv64-linux-gnu",
            None,
            "/lib/ld-linux-riscv64-lp64d.so.1",
        ),
        // Little-endian assumed: Debian's ppc64 port is ppc64el.
        (EM_PPC64, true) => ("powerpc64le-linux-gnu", None, "/lib64/ld64.so.2"),
        (EM_S390, true) => ("s390x-linux-gnu", None, "/lib/ld64.so.1"),
        _ => {
            return Abi {
                class64,
                ..Abi::default()
            }
        }
    };
    Abi {
        triplet: Some(triplet),
        platform,
        interp: Some(interp),
        class64,
    }
}

impl Abi {
    /// `$LIB`: Debian's glibc expands it to `lib/<triplet>`.
    pub fn lib(&self) -> Vec<u8> {
        match self.triplet {
            Some(t) => format!("lib/{t}").into_bytes(),
            None if self.class64 => b"lib64".to_vec(),
            None => b"lib".to_vec(),
        }
    }

    /// The loader's built-in directories, searched last. Debian's ld.so
    /// searches the triplet directories, then /lib and /usr/lib
    /// (`ld.so --help`); /lib64 and /usr/lib64 are added for 64-bit
    /// objects, where other distributions keep their libraries.
    pub fn default_dirs(&self) -> Vec<Vec<u8>> {
        let mut dirs = Vec::new();
        if let Some(t) = self.triplet {
            dirs.push(format!("/lib/{t}").into_bytes());
            dirs.push(format!("/usr/lib/{t}").into_bytes());
        }
        if self.class64 {
            dirs.push(b"/lib64".to_vec());
            dirs.push(b"/usr/lib64".to_vec());
        }
        dirs.push(b"/lib".to_vec());
        dirs.push(b"/usr/lib".to_vec());
        dirs
    }
}
