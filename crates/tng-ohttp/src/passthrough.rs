//! `header_passthrough` policy (spec §2.6): which headers may be copied between the outer
//! (visible to intermediaries) and inner (encrypted) messages.

use http::HeaderName;

/// Never copied in any direction: they describe one hop's framing or TNG itself, so copying
/// them would corrupt the other message.
pub const PROTECTED_HEADERS: [&str; 14] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "x-tng-ohttp-api",
    "server",
    "host",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderPassthrough {
    All,
    /// Header names (`HeaderName` is lower case, so matching is case-insensitive).
    Names(Vec<HeaderName>),
}

impl Default for HeaderPassthrough {
    fn default() -> Self {
        HeaderPassthrough::Names(Vec::new())
    }
}

impl HeaderPassthrough {
    pub fn allows(&self, name: &HeaderName) -> bool {
        if is_protected(name) {
            return false;
        }
        match self {
            HeaderPassthrough::All => true,
            HeaderPassthrough::Names(names) => names.contains(name),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, HeaderPassthrough::Names(names) if names.is_empty())
    }
}

pub fn is_protected(name: &HeaderName) -> bool {
    PROTECTED_HEADERS.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn default_allows_nothing() {
        let p = HeaderPassthrough::default();
        assert!(p.is_empty());
        assert!(!p.allows(&name("x-custom")));
    }

    #[test]
    fn names_match_case_insensitively() {
        let p = HeaderPassthrough::Names(vec![name("X-Custom"), name("origin")]);
        assert!(p.allows(&name("x-custom")));
        assert!(p.allows(&name("X-CUSTOM")));
        assert!(p.allows(&name("origin")));
        assert!(!p.allows(&name("x-other")));
    }

    #[test]
    fn protected_never_pass() {
        let listed = HeaderPassthrough::Names(PROTECTED_HEADERS.iter().map(|h| name(h)).collect());
        for h in PROTECTED_HEADERS {
            assert!(!HeaderPassthrough::All.allows(&name(h)), "{h}");
            assert!(!listed.allows(&name(h)), "{h}");
        }
        assert!(HeaderPassthrough::All.allows(&name("origin")));
        assert!(HeaderPassthrough::All.allows(&name("authorization")));
    }
}
