//! Archive member names that cannot unpack outside the root.
//!
//! Lists name files as `find .` prints them (`./bin/hello`); archives want
//! them relative (`bin/hello`). A name that is absolute or has a `..`
//! component would make `cpio -i`, the kernel's initramfs unpacker or a
//! container engine write outside the target (the "zip slip" class of bug),
//! so the packers refuse such names instead of rewriting them.

/// Turns a list name into a relative member name: `./` prefixes, `.` and
/// empty components are dropped. The root itself (`.`) gives an empty
/// name. Absolute names and `..` components are refused.
pub fn member_name(name: &[u8]) -> Result<Vec<u8>, &'static str> {
    if name.first() == Some(&b'/') {
        return Err("absolute name would unpack outside the root");
    }
    if name.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut out = Vec::with_capacity(name.len());
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("name with a '..' component would unpack outside the root"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
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
        assert_eq!(member_name(b"./").unwrap(), b"");
        assert_eq!(member_name(b"a//b/./c").unwrap(), b"a/b/c");
        assert_eq!(member_name(b"./a b/\xff").unwrap(), b"a b/\xff");
        assert_eq!(member_name(b"./..foo").unwrap(), b"..foo");
    }

    #[test]
    fn refuses_escapes() {
        assert!(member_name(b"/etc/passwd").is_err());
        assert!(member_name(b"../x").is_err());
        assert!(member_name(b"./a/../../x").is_err());
        assert!(member_name(b"a/..").is_err());
    }

    #[test]
    fn parents() {
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
    }
}
