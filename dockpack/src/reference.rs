//! Image names as Docker parses them, so that a tag Docker would refuse
//! is refused here, before any output.
//!
//! The grammar is distribution's `reference` package (reference.go):
//!
//! ```text
//! name           := [domain '/'] path-component ['/' path-component]*
//! domain         := host [':' port-number]
//! host           := domain-component ['.' domain-component]* | '[' IPv6 ']'
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! path-component := /[a-z0-9]+/ ([_.]|__|[-]* /[a-z0-9]+/)*
//! tag            := /[\w][\w.-]{0,127}/
//! ```
//!
//! and `ParseNormalizedNamed` (normalize.go): the first component is a
//! domain only if it holds `.` or `:` or is `localhost`; otherwise the
//! domain is `docker.io`, where a one-component path gets `library/`.
//! The whole name is at most 255 bytes.

/// A parsed `--tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The name as the user wrote it, with `:latest` added when no tag
    /// was given: what `docker images` shows and `RepoTags` holds.
    pub familiar: String,
    /// `docker.io/library/hello:1`: containerd's `io.containerd.image.name`.
    pub full: String,
    /// The tag alone: `org.opencontainers.image.ref.name`.
    pub tag: String,
}

fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn is_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty() && v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':');
    }
    !host.is_empty() && host.split('.').all(is_domain_component)
}

fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: one of `.`, `_`, `__`, or any run of `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// Parses `NAME[:TAG]` as `docker tag` would.
pub fn parse(text: &str) -> Result<Reference, String> {
    let bad = |why: &str| {
        format!(
            "invalid tag {}: {why}",
            filtertool::quote::quote(text.as_bytes())
        )
    };
    if text.contains('@') {
        return Err(bad("a digest reference cannot be a tag"));
    }
    let (name, tag) = match text.rfind(':') {
        Some(i) if !text[i..].contains('/') => (&text[..i], &text[i + 1..]),
        _ => (text, "latest"),
    };
    if !is_tag(tag) {
        return Err(bad("the tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
    }
    if name.len() > 255 {
        return Err(bad("the name is longer than 255 bytes"));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        Some((first, _)) if first.bytes().any(|c| c.is_ascii_uppercase()) => {
            return Err(bad("repository name must be lowercase"))
        }
        _ => (None, name),
    };
    if let Some(d) = domain {
        if !is_domain(d) {
            return Err(bad("the registry host is not a valid domain[:port]"));
        }
    }
    if path.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("repository name must be lowercase"));
    }
    if !path.split('/').all(is_path_component) {
        return Err(bad(
            "each path component must be lowercase letters and digits, \
             separated by '.', '_', '__' or dashes",
        ));
    }
    let full_name = match domain {
        Some(_) => name.to_string(),
        None if path.contains('/') => format!("docker.io/{path}"),
        None => format!("docker.io/library/{path}"),
    };
    Ok(Reference {
        familiar: format!("{name}:{tag}"),
        full: format!("{full_name}:{tag}"),
        tag: tag.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_docker_accepts() {
        let r = parse("hello").unwrap();
        assert_eq!(r.familiar, "hello:latest");
        assert_eq!(r.full, "docker.io/library/hello:latest");
        assert_eq!(r.tag, "latest");
        let r = parse("127.0.0.1:5000/a/b-c__d:v1.2_x").unwrap();
        assert_eq!(r.full, "127.0.0.1:5000/a/b-c__d:v1.2_x");
        assert_eq!(r.tag, "v1.2_x");
        assert_eq!(parse("me/app:1").unwrap().full, "docker.io/me/app:1");
        assert_eq!(parse("localhost/x").unwrap().full, "localhost/x:latest");
        assert!(parse("[::1]:5000/x:y").is_ok());
        assert!(parse("Registry.Example.com/x").is_ok());
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Hello",
            "hello:",
            "hello:-x",
            "a//b",
            "-a",
            "a-",
            "a___b",
            "a..b",
            "hello@sha256:00",
            "x:y:z",
            "host:port/x",
            "/x",
            "x/",
            "Upper/x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(parse(&long_tag).is_err());
    }
}
