//! Message rules both gateways apply to the requests they accept: the ingress to plain requests
//! from the application, the egress to the inner (decrypted) requests. Whatever a gateway
//! forwards has one meaning for every parser after it: one `Host` (RFC 9112 §3.2), one framing
//! (RFC 9112 §6.3), a well-formed request target (RFC 9112 §3.2).
//!
//! Refusals are `400` unless the request is well-formed but asks for something a tunnel cannot
//! carry (`501`).

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Authority;
use http::{Method, StatusCode};

use crate::error::TngError;

fn bad(code: &'static str, message: impl Into<String>) -> TngError {
    TngError::new(StatusCode::BAD_REQUEST, code, message)
}

/// The `Host` a forwarded request must carry. `authority` is the target's authority when the
/// request came in absolute form (or HTTP/2 `:authority`): it replaces whatever `Host` said
/// (RFC 9112 §3.2.2). `host_required` is false only for HTTP/1.0 requests, which may lack it.
/// Returns `None` when there is no authority at all and none is required.
pub fn effective_host(
    headers: &HeaderMap,
    authority: Option<&str>,
    host_required: bool,
) -> Result<Option<HeaderValue>, TngError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("InvalidHost", "more than one Host header field"));
    }
    if let Some(host) = host {
        // Checked even when the target's authority replaces it: a message with an invalid
        // field is invalid whichever value wins.
        valid_authority(host.as_bytes())
            .ok_or_else(|| bad("InvalidHost", "the Host header field is not a valid host"))?;
    }
    if let Some(authority) = authority.filter(|a| !a.is_empty()) {
        let value = valid_authority(authority.as_bytes())
            .and_then(|_| HeaderValue::from_str(authority).ok())
            .ok_or_else(|| bad("InvalidHost", "the request target's authority is not valid"))?;
        return Ok(Some(value));
    }
    match host {
        Some(host) => Ok(Some(host.clone())),
        None if host_required => Err(bad("MissingHost", "the request has no Host header field")),
        None => Ok(None),
    }
}

/// `uri-host [ ":" port ]` without user information (which RFC 9110 §4.2.4 forbids in http
/// URIs); an empty `Host` is allowed by the grammar but names nothing we could route by.
fn valid_authority(value: &[u8]) -> Option<Authority> {
    if value.is_empty() || value.contains(&b'@') {
        return None;
    }
    let authority = Authority::try_from(value).ok()?;
    if authority.host().is_empty() {
        return None;
    }
    // The parser leaves the port unchecked; `port = *DIGIT` (RFC 3986 §3.2.3), at most u16.
    let text = authority.as_str();
    let host_end = if text.starts_with('[') {
        text.find(']').map_or(text.len(), |i| i + 1)
    } else {
        text.rfind(':').unwrap_or(text.len())
    };
    if let Some(port) = text[host_end..].strip_prefix(':') {
        if !port.bytes().all(|b| b.is_ascii_digit())
            || (!port.is_empty() && port.parse::<u16>().is_err())
        {
            return None;
        }
    } else if host_end != text.len() {
        return None;
    }
    Some(authority)
}

/// How an inner request's body is framed, from its header fields. The body itself is framed
/// by BHTTP; these fields must agree with it and are rebuilt for the hop to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No framing field: the BHTTP message says whether there is content.
    Unspecified,
    /// `Content-Length`, validated (a list of equal values counts as one, RFC 9110 §8.6).
    Length(u64),
    /// `Transfer-Encoding: chunked`: overrides any `Content-Length` (RFC 9112 §6.3, item 3).
    Chunked,
}

/// RFC 9112 §6.3: an invalid `Content-Length` (non-numeric, a list of differing values,
/// differing repeated fields) makes the framing invalid, and a server must answer 400.
pub fn request_framing(headers: &HeaderMap) -> Result<Framing, TngError> {
    let mut codings = Vec::new();
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let text = value.to_str().map_err(|_| {
            bad(
                "InvalidTransferEncoding",
                "Transfer-Encoding is not visible ASCII",
            )
        })?;
        codings.extend(
            text.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty()),
        );
    }
    if !codings.is_empty() {
        // BHTTP carries the content already decoded from the hop that sent it; any coding
        // other than `chunked` would be content we cannot frame (RFC 9112 §6.1: 501).
        if codings.iter().all(|c| c == "chunked") && codings.len() == 1 {
            return Ok(Framing::Chunked);
        }
        return Err(TngError::new(
            StatusCode::NOT_IMPLEMENTED,
            "UnsupportedTransferEncoding",
            "only Transfer-Encoding: chunked is supported",
        ));
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let invalid = || bad("InvalidContentLength", "invalid Content-Length");
        let text = value.to_str().map_err(|_| invalid())?;
        for part in text.split(',') {
            let part = part.trim_matches([' ', '\t']);
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            let n: u64 = part.parse().map_err(|_| invalid())?;
            if length.is_some_and(|l| l != n) {
                return Err(bad(
                    "InvalidContentLength",
                    "Content-Length has differing values",
                ));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Unspecified, Framing::Length))
}

/// The request target an inner request may carry: origin-form (`/path?query`), or `*` for
/// `OPTIONS` (asterisk-form, carried as is). Anything else is malformed here: the authority
/// travels separately, and `CONNECT` is refused before this.
pub fn check_target(method: &Method, path: &str) -> Result<(), TngError> {
    if path == "*" {
        if method == Method::OPTIONS {
            return Ok(());
        }
        return Err(bad(
            "InvalidRequestTarget",
            "the asterisk-form target is only valid for OPTIONS",
        ));
    }
    if !path.starts_with('/') {
        return Err(bad(
            "InvalidRequestTarget",
            "the request target is not in origin form (it must start with /)",
        ));
    }
    if http::uri::PathAndQuery::try_from(path).is_err() {
        return Err(bad(
            "InvalidRequestTarget",
            "the request target contains characters not allowed in a URI",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn content_length_rules() {
        let ok = |p: &[(&str, &str)]| request_framing(&headers(p)).map_err(|e| e.code);
        assert_eq!(ok(&[]), Ok(Framing::Unspecified));
        assert_eq!(ok(&[("content-length", "10")]), Ok(Framing::Length(10)));
        assert_eq!(ok(&[("content-length", "10, 10")]), Ok(Framing::Length(10)));
        assert_eq!(
            ok(&[("content-length", "10"), ("content-length", "10")]),
            Ok(Framing::Length(10))
        );
        for bad in [
            &[("content-length", "10, 20")][..],
            &[("content-length", "10"), ("content-length", "20")],
            &[("content-length", "abc")],
            &[("content-length", "-1")],
            &[("content-length", "+1")],
            &[("content-length", "")],
            &[("content-length", "1 0")],
            &[("content-length", "99999999999999999999999")],
        ] {
            assert_eq!(ok(bad), Err("InvalidContentLength"), "{bad:?}");
        }
        assert_eq!(
            ok(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            ok(&[("transfer-encoding", "gzip, chunked")]),
            Err("UnsupportedTransferEncoding")
        );
    }

    #[test]
    fn host_rules() {
        let host = |p: &[(&str, &str)], authority: Option<&str>, required| {
            effective_host(&headers(p), authority, required)
                .map(|h| h.map(|v| v.to_str().unwrap().to_string()))
                .map_err(|e| e.code)
        };
        assert_eq!(host(&[("host", "a:1")], None, true), Ok(Some("a:1".into())));
        assert_eq!(
            host(&[("host", "a"), ("host", "a")], None, true),
            Err("InvalidHost")
        );
        assert_eq!(host(&[], None, true), Err("MissingHost"));
        assert_eq!(host(&[], None, false), Ok(None));
        for invalid in ["", "a b", "u@a", "a:x", "[::1"] {
            assert_eq!(
                host(&[("host", invalid)], None, true),
                Err("InvalidHost"),
                "{invalid:?}"
            );
        }
        assert_eq!(
            host(&[("host", "other")], Some("target:8"), true),
            Ok(Some("target:8".into()))
        );
        assert_eq!(host(&[], Some("t"), true), Ok(Some("t".into())));
    }

    #[test]
    fn target_rules() {
        assert!(check_target(&Method::OPTIONS, "*").is_ok());
        assert!(check_target(&Method::GET, "*").is_err());
        assert!(check_target(&Method::GET, "/a?b").is_ok());
        assert!(check_target(&Method::GET, "a").is_err());
        assert!(check_target(&Method::GET, "").is_err());
        assert!(check_target(&Method::GET, "http://x/").is_err());
        assert!(check_target(&Method::GET, "/a b").is_err());
    }
}
