//! Which address the service learns as its client's (`forward_client_ip`), decided per opened
//! request: the TCP peer of the egress (or the PROXY protocol source that replaced it), unless
//! an ingress this egress believes carried the application's own address sealed inside.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tng_config::TrustIngressClientIp;
use tng_ohttp::api::CLIENT_IP_HEADER;

static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

#[derive(Debug, Clone, Copy)]
pub struct ClientIpPolicy {
    pub forward: bool,
    pub trust: TrustIngressClientIp,
}

/// Rewrites the decrypted request's headers. `peer` is the connection's source; `attested`
/// says whether the ingress proved its TEE for this request (client attestation).
pub fn apply(
    headers: &mut HeaderMap,
    policy: ClientIpPolicy,
    peer: Option<IpAddr>,
    attested: bool,
) {
    // Removed whatever happens: it is addressed to us, never to the service.
    let claimed = headers
        .remove(CLIENT_IP_HEADER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<IpAddr>().ok());
    let believed = match policy.trust {
        TrustIngressClientIp::Always => claimed,
        TrustIngressClientIp::Attested if attested => claimed,
        _ => None,
    };
    if claimed.is_some() && believed.is_none() {
        tracing::debug!("client address from the ingress ignored: the ingress is not trusted");
    }
    if !policy.forward {
        return;
    }
    let Some(client) = believed.or(peer).map(|ip| ip.to_canonical()) else {
        return;
    };
    let client_text = client.to_string();
    // Every earlier value is kept, in order, as one list: the service reads one header.
    let mut chain = String::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(value) = value.to_str() {
            let value = value.trim();
            if !value.is_empty() {
                chain.push_str(value);
                chain.push_str(", ");
            }
        }
    }
    chain.push_str(&client_text);
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(&client_text) {
        headers.insert(X_REAL_IP.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn seen(map: &HeaderMap, name: &str) -> Vec<String> {
        map.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    const ON: ClientIpPolicy = ClientIpPolicy {
        forward: true,
        trust: TrustIngressClientIp::Attested,
    };
    fn peer() -> Option<IpAddr> {
        Some("198.18.0.7".parse().unwrap())
    }

    #[test]
    fn the_peer_is_appended_and_replaces_x_real_ip() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "9.9.9.9, 8.8.8.8"),
            ("x-real-ip", "5.6.7.8"),
        ]);
        apply(&mut map, ON, peer(), false);
        assert_eq!(
            seen(&map, "x-forwarded-for"),
            ["1.2.3.4, 9.9.9.9, 8.8.8.8, 198.18.0.7"]
        );
        assert_eq!(seen(&map, "x-real-ip"), ["198.18.0.7"]);
        let mut bare = HeaderMap::new();
        apply(
            &mut bare,
            ON,
            Some("::ffff:127.0.0.1".parse().unwrap()),
            false,
        );
        assert_eq!(seen(&bare, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen(&bare, "x-real-ip"), ["127.0.0.1"]);
    }

    #[test]
    fn an_ingress_claim_counts_only_when_trusted_and_never_reaches_the_service() {
        let claim = || headers(&[(CLIENT_IP_HEADER, "198.18.0.1")]);
        let cases = [
            (TrustIngressClientIp::Attested, true, "198.18.0.1"),
            (TrustIngressClientIp::Attested, false, "198.18.0.7"),
            (TrustIngressClientIp::Always, false, "198.18.0.1"),
            (TrustIngressClientIp::Never, true, "198.18.0.7"),
        ];
        for (trust, attested, expected) in cases {
            let mut map = claim();
            let policy = ClientIpPolicy {
                forward: true,
                trust,
            };
            apply(&mut map, policy, peer(), attested);
            assert_eq!(seen(&map, "x-real-ip"), [expected], "{trust:?} {attested}");
            assert!(map.get(CLIENT_IP_HEADER).is_none());
        }
        let mut garbage = headers(&[(CLIENT_IP_HEADER, "not an address")]);
        let always = ClientIpPolicy {
            forward: true,
            trust: TrustIngressClientIp::Always,
        };
        apply(&mut garbage, always, peer(), true);
        assert_eq!(seen(&garbage, "x-real-ip"), ["198.18.0.7"]);
    }

    #[test]
    fn switched_off_leaves_the_application_headers_alone() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "5.6.7.8"),
            (CLIENT_IP_HEADER, "198.18.0.1"),
        ]);
        let off = ClientIpPolicy {
            forward: false,
            trust: TrustIngressClientIp::Always,
        };
        apply(&mut map, off, peer(), true);
        assert_eq!(seen(&map, "x-forwarded-for"), ["1.2.3.4"]);
        assert_eq!(seen(&map, "x-real-ip"), ["5.6.7.8"]);
        assert!(map.get(CLIENT_IP_HEADER).is_none());
    }
}
