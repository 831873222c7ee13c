//! Archive member names that cannot unpack outside the root.
//!
//! Lists name files as `find .` prints them (`./bin/hello`); archives want
//! them relative (`bin/hello`). A name that is absolute or has a `..`
//! component would make `cpio -i`, the kernel's initramfs unpacker or a
//! container engine write outside the target (the "zip slip" class of bug),
//! so the packers refuse such names instead of rewriting them.
//! [`crate::tree`] is the other half: reading a member from the source
//! tree without a symlink on the way leading outside it.

/// Turns a list name into a relative member name (`./bin/hello` →
/// `bin/hello`; the root `.` gives an empty name), refusing what
/// [`crate::tree::check_name`] refuses: absolute names, `..`, empty and
/// `.` components, a trailing `/` or `/.`.
pub fn member_name(name: &[u8]) -> Result<Vec<u8>, &'static str> {
    crate::tree::check_name(name)
        .map(<[u8]>::to_vec)
        .map_err(crate::tree::NameError::message)
}

/// The parent of a member name (`a/b` → `a`, `a` → empty).
pub fn parent(member: &[u8]) -> &[u8] {
    match member.iter().rposition(|&b| b == b'/') {
        Some(i) => &member[..i],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(member_name(b"./bin/hello").unwrap(), b"bin/hello");
        assert_eq!(member_name(b".").unwrap(), b"");
        assert_eq!(member_name(b"./a b/\xff").unwrap(), b"a b/\xff");
        assert_eq!(member_name(b"./..foo").unwrap(), b"..foo");
    }

    #[test]
    fn refuses_escapes() {
        assert!(member_name(b"/etc/passwd").is_err());
        assert!(member_name(b"../x").is_err());
        assert!(member_name(b"./a/../../x").is_err());
        assert!(member_name(b"a/..").is_err());
        assert!(member_name(b"./").is_err());
        assert!(member_name(b"a//b/./c").is_err());
    }

    #[test]
    fn parents() {
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
    }
}
