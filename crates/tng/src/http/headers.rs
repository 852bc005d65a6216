//! Header hygiene at the tunnel boundary.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one hop's connection, not the message. They must not be carried
/// through the tunnel: the far side frames its own connection (RFC 9110 §7.6.1).
const CONNECTION_SPECIFIC: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes connection-specific headers, including those named by `Connection`.
pub fn strip_connection_specific(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(CONNECTION_SPECIFIC.iter()) {
        headers.remove(name);
    }
}

/// Headers addressed to the proxy the application talks to, never to anything behind it
/// (RFC 9110 §11.7.2, and the de-facto `Proxy-Connection`): whichever capture mode received
/// the request, they never leave the ingress.
pub const PROXY_SCOPED: [HeaderName; 2] = [
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
];

pub fn strip_proxy_scoped(headers: &mut HeaderMap) {
    for name in &PROXY_SCOPED {
        headers.remove(name);
    }
}

/// The declared `Content-Length`, if present and well-formed.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether a request body is certainly present, by HTTP/1.1 framing rules.
pub fn declares_body(headers: &HeaderMap) -> bool {
    let chunked = headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
    });
    chunked || content_length(headers).is_some_and(|n| n > 0)
}

/// Whether a request asks to switch protocols (WebSocket and friends), which OHTTP cannot carry.
pub fn is_upgrade<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::CONNECT
        || req.headers().contains_key(header::UPGRADE)
        || req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("upgrade"))
        })
}

/// The configured header passthrough list as the OHTTP codecs take it.
pub fn passthrough(list: &tng_config::HeaderList) -> tng_ohttp::passthrough::HeaderPassthrough {
    use tng_ohttp::passthrough::HeaderPassthrough;
    match list {
        tng_config::HeaderList::All => HeaderPassthrough::All,
        tng_config::HeaderList::Names(names) => HeaderPassthrough::Names(
            names
                .iter()
                // An invalid header name can never match a real header, so dropping it is exact.
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_standard_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::CONTENT_LENGTH, "5".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_connection_specific(&mut h);
        let names: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(names, vec!["content-length", "x-keep"]);
    }

    #[test]
    fn body_presence_follows_http11_framing() {
        let mut h = HeaderMap::new();
        assert!(!declares_body(&h));
        h.insert(header::CONTENT_LENGTH, "0".parse().unwrap());
        assert!(!declares_body(&h));
        h.insert(header::CONTENT_LENGTH, "3".parse().unwrap());
        assert!(declares_body(&h));
        h.remove(header::CONTENT_LENGTH);
        h.insert(header::TRANSFER_ENCODING, "gzip, chunked".parse().unwrap());
        assert!(declares_body(&h));
    }
}
