//! The PROXY protocol v2 header an L4 load balancer writes before a connection's first byte
//! (`add_egress[].proxy_protocol`): read exactly the header, nothing of what follows, so the
//! stream stays untouched for TLS or HTTP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::v2;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The fixed part: signature (12), version/command, family/protocol, length (2).
const FIXED_LEN: usize = 16;
/// Addresses take at most 216 bytes (two unix paths); the rest is TLVs. Load balancers send a
/// few dozen bytes; a peer that announces more is not one.
const MAX_LEN: usize = 4096;
const V1_PREFIX: &[u8] = b"PROXY ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol v2 header")]
    Missing,
    #[error("PROXY protocol v1 (text) is not accepted; configure the load balancer to send v2")]
    Version1,
    #[error("the PROXY protocol v2 header announces {0} bytes, more than the {MAX_LEN} accepted")]
    TooLarge(usize),
    #[error("malformed PROXY protocol v2 header: {0}")]
    Malformed(String),
    #[error("no complete PROXY protocol v2 header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before the PROXY protocol v2 header was complete")]
    Closed,
}

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// `PROXY`: relayed for this client.
    Client(SocketAddr),
    /// `LOCAL` (the balancer's own health check) or an address family without IP addresses:
    /// the TCP peer stands for itself.
    Peer,
}

/// Reads the header from the start of `stream`, waiting at most `timeout` for all of it.
pub async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Announced, ProxyHeaderError> {
    match tokio::time::timeout(timeout, read_header(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyHeaderError::Timeout(timeout)),
    }
}

async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Announced, ProxyHeaderError> {
    let mut header = vec![0u8; FIXED_LEN];
    let mut filled = 0;
    // Byte-exact reading: a plain HTTP request shorter than 16 bytes must still be told apart
    // from a slow balancer, so the signature is checked as soon as the bytes arrive.
    while filled < FIXED_LEN {
        let n = stream
            .read(&mut header[filled..])
            .await
            .map_err(|_| ProxyHeaderError::Closed)?;
        if n == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        filled += n;
        check_prefix(&header[..filled])?;
    }
    let len = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if len > MAX_LEN {
        return Err(ProxyHeaderError::TooLarge(len));
    }
    header.resize(FIXED_LEN + len, 0);
    stream
        .read_exact(&mut header[FIXED_LEN..])
        .await
        .map_err(|_| ProxyHeaderError::Closed)?;
    parse(&header)
}

fn check_prefix(seen: &[u8]) -> Result<(), ProxyHeaderError> {
    let n = seen.len().min(v2::PROTOCOL_PREFIX.len());
    if seen[..n] == v2::PROTOCOL_PREFIX[..n] {
        return Ok(());
    }
    let m = seen.len().min(V1_PREFIX.len());
    if m == V1_PREFIX.len() && seen[..m] == *V1_PREFIX {
        return Err(ProxyHeaderError::Version1);
    }
    if seen[..m] == V1_PREFIX[..m] {
        // Maybe v1, maybe not: more bytes decide.
        return Ok(());
    }
    Err(ProxyHeaderError::Missing)
}

/// Decodes a complete header (the fixed part and the announced length).
pub fn parse(header: &[u8]) -> Result<Announced, ProxyHeaderError> {
    let parsed =
        v2::Header::try_from(header).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if parsed.command == v2::Command::Local {
        return Ok(Announced::Peer);
    }
    Ok(match parsed.addresses {
        v2::Addresses::IPv4(a) => {
            Announced::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
        }
        v2::Addresses::IPv6(a) => {
            Announced::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
        }
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => Announced::Peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROXY TCP4 198.18.0.5:40000 -> 198.18.0.9:8080, then one NOOP TLV.
    fn tcp4_header() -> Vec<u8> {
        let mut h = Vec::from(v2::PROTOCOL_PREFIX);
        h.extend([0x21, 0x11, 0, 16]);
        h.extend([198, 18, 0, 5, 198, 18, 0, 9]);
        h.extend(40000u16.to_be_bytes());
        h.extend(8080u16.to_be_bytes());
        h.extend([4, 0, 1, 0]);
        h
    }

    #[tokio::test]
    async fn a_proxied_connection_announces_its_client_and_leaves_the_rest() {
        let mut bytes = tcp4_header();
        bytes.extend(b"GET / HTTP/1.1\r\n\r\n");
        let mut stream = bytes.as_slice();
        let announced = read(&mut stream, Duration::from_secs(1)).await;
        assert_eq!(
            announced,
            Ok(Announced::Client("198.18.0.5:40000".parse().unwrap()))
        );
        assert_eq!(stream, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn tcp6_and_local_headers() {
        let mut h = Vec::from(v2::PROTOCOL_PREFIX);
        h.extend([0x21, 0x21, 0, 36]);
        h.extend("fd00::5".parse::<std::net::Ipv6Addr>().unwrap().octets());
        h.extend("fd00::9".parse::<std::net::Ipv6Addr>().unwrap().octets());
        h.extend([0x9c, 0x40, 0x1f, 0x90]);
        assert_eq!(
            parse(&h),
            Ok(Announced::Client("[fd00::5]:40000".parse().unwrap()))
        );
        let mut local = Vec::from(v2::PROTOCOL_PREFIX);
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local), Ok(Announced::Peer));
    }

    #[tokio::test]
    async fn what_is_not_a_v2_header_is_refused_with_its_reason() {
        let cases: [(&[u8], ProxyHeaderError); 5] = [
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                ProxyHeaderError::Missing,
            ),
            (b"GET /\r\n", ProxyHeaderError::Missing),
            (b"\x16\x03\x01\x02\x00", ProxyHeaderError::Missing),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                ProxyHeaderError::Version1,
            ),
            (&v2::PROTOCOL_PREFIX[..8], ProxyHeaderError::Closed),
        ];
        for (bytes, expected) in cases {
            let mut stream = bytes;
            assert_eq!(
                read(&mut stream, Duration::from_secs(1)).await,
                Err(expected),
                "{bytes:?}"
            );
        }
        let mut huge = Vec::from(v2::PROTOCOL_PREFIX);
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        let mut stream = huge.as_slice();
        assert_eq!(
            read(&mut stream, Duration::from_secs(1)).await,
            Err(ProxyHeaderError::TooLarge(65535))
        );
        let mut bad_family = Vec::from(v2::PROTOCOL_PREFIX);
        bad_family.extend([0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(
            parse(&bad_family),
            Err(ProxyHeaderError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (mut client, _server) = tokio::io::duplex(64);
        assert_eq!(
            read(&mut client, Duration::from_millis(50)).await,
            Err(ProxyHeaderError::Timeout(Duration::from_millis(50)))
        );
    }
}
