//! The one quoting rule for names in messages, used by every tool.
//!
//! A name in a message comes from a tree, a list or an archive someone
//! else wrote, so it may hold a newline (which would forge a second
//! message line), a terminal escape, or bytes that are not UTF-8. Every
//! message shows it in double quotes with anything that is not printable
//! ASCII escaped, as `ls --quoting-style=c` does in the C locale: `\n`,
//! `\t`, `\r`, `\"`, `\\` and `\xNN` for every other byte. Escaping all
//! non-ASCII bytes (not only invalid UTF-8, as ripgrep does) also keeps
//! Unicode controls such as U+202E (right-to-left override) and U+0085
//! (next line) from reordering or splitting a message.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Writes `bytes` in double quotes, escaped as the module doc says.
pub fn write_quoted(f: &mut dyn fmt::Write, bytes: &[u8]) -> fmt::Result {
    f.write_char('"')?;
    for &b in bytes {
        match b {
            b'"' => f.write_str("\\\"")?,
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\t' => f.write_str("\\t")?,
            b'\r' => f.write_str("\\r")?,
            0x20..=0x7e => f.write_char(char::from(b))?,
            _ => write!(f, "\\x{b:02x}")?,
        }
    }
    f.write_char('"')
}

/// [`write_quoted`] into a new `String`: the form in which messages name
/// a file, a member or a list line.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    let _ = write_quoted(&mut s, bytes);
    s
}

/// [`quote`] for an `OsStr` (an argument as the user typed it).
pub fn quote_os(s: &OsStr) -> String {
    quote(s.as_bytes())
}

/// [`quote`] for a path.
pub fn quote_path(p: &Path) -> String {
    quote(p.as_os_str().as_bytes())
}

/// A name that formats quoted: `format!("{}", Quoted(name))`.
pub struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_quoted(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_and_non_ascii_are_escaped() {
        assert_eq!(quote(b"a\nb\xff\"\\"), r#""a\nb\xff\"\\""#);
        assert_eq!(quote(b"\x1b[2J\t\r"), r#""\x1b[2J\t\r""#);
        // U+202E RIGHT-TO-LEFT OVERRIDE, valid UTF-8, still escaped.
        assert_eq!(quote("x\u{202e}y".as_bytes()), r#""x\xe2\x80\xaey""#);
        assert_eq!(format!("{}", Quoted(b"ok name")), "\"ok name\"");
    }

    #[test]
    fn a_quoted_name_never_holds_a_line_break() {
        for b in 0..=255u8 {
            let q = quote(&[b]);
            assert!(q.bytes().all(|c| (0x20..=0x7e).contains(&c)), "{b:#x}: {q}");
        }
    }
}
