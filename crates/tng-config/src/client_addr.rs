//! Where an egress learns the client's address, and whom it believes: `proxy_protocol` on the
//! entry (an L4 load balancer in front), `forward_client_ip` / `trust_ingress_client_ip` on
//! the OHTTP egress, `send_client_ip` on the OHTTP ingress.

use std::net::IpAddr;

use crate::error::Result;
use crate::filter::parse_cidr;
use crate::json::Field;

/// `add_egress[].proxy_protocol` (not an upstream key): every connection starts with a PROXY
/// protocol v2 header whose source address replaces the TCP peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Peers allowed to send the header; empty means any peer (for a listener that only the
    /// load balancer can reach). A connection from any other peer is refused.
    pub trusted_peers: Vec<IpPrefix>,
}

impl ProxyProtocol {
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_peers.is_empty() || self.trusted_peers.iter().any(|p| p.contains(peer))
    }
}

/// An address prefix, IPv4 or IPv6 (`10.0.0.0/8`, `fd00::/8`; a bare address is a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows up mapped into IPv6.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

/// Whether the egress believes the client address an ingress carries inside the sealed
/// request (`add_egress[].ohttp.trust_ingress_client_ip`, not an upstream key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustIngressClientIp {
    /// Only from an ingress whose attestation this egress verified (`verify`).
    #[default]
    Attested,
    /// From any ingress: only for an egress that nobody else can reach.
    Always,
    Never,
}

pub(crate) fn parse_proxy_protocol(field: &Field<'_>) -> Result<Option<ProxyProtocol>> {
    if let Ok(enabled) = field.bool() {
        return Ok(enabled.then(|| ProxyProtocol {
            trusted_peers: Vec::new(),
        }));
    }
    let mut obj = field
        .object()
        .map_err(|_| field.err("must be true, false or {\"trusted_peers\": [...]}"))?;
    let peers = obj.req("trusted_peers")?;
    let trusted_peers = peers
        .array()?
        .iter()
        .map(|item| parse_prefix(item.str()?).map_err(|m| item.err(m)))
        .collect::<Result<Vec<_>>>()?;
    if trusted_peers.is_empty() {
        return Err(peers.err("must name at least one peer (or write `true` to trust any peer)"));
    }
    obj.finish(&["trusted_peers"])?;
    Ok(Some(ProxyProtocol { trusted_peers }))
}

pub(crate) fn parse_trust(field: &Field<'_>) -> Result<TrustIngressClientIp> {
    match field.str()? {
        "attested" => Ok(TrustIngressClientIp::Attested),
        "always" => Ok(TrustIngressClientIp::Always),
        "never" => Ok(TrustIngressClientIp::Never),
        _ => Err(field.err("must be \"attested\", \"always\" or \"never\"")),
    }
}

fn parse_prefix(text: &str) -> std::result::Result<IpPrefix, String> {
    if !text.contains(':') {
        let (addr, len) = parse_cidr(text)?;
        return Ok(IpPrefix {
            addr: IpAddr::V4(addr),
            len,
        });
    }
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: std::net::Ipv6Addr = addr_text
        .parse()
        .map_err(|_| format!("invalid CIDR {text:?}: not an IP address"))?;
    let len = match len_text {
        None => 128,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 128 && l.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("invalid CIDR {text:?}: prefix length must be between 0 and 128")
            })?,
    };
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    if u128::from(addr) & !mask != 0 {
        return Err(format!("invalid CIDR {text:?}: host bits are not zero"));
    }
    Ok(IpPrefix {
        addr: IpAddr::V6(addr),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_contain_their_addresses_only() {
        let v4 = parse_prefix("198.18.0.0/24").unwrap();
        assert!(v4.contains(ip("198.18.0.7")));
        assert!(v4.contains(ip("::ffff:198.18.0.7")));
        assert!(!v4.contains(ip("198.18.1.7")));
        assert!(!v4.contains(ip("fd00::1")));
        let host = parse_prefix("127.0.0.8").unwrap();
        assert!(host.contains(ip("127.0.0.8")));
        assert!(!host.contains(ip("127.0.0.9")));
        let v6 = parse_prefix("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(parse_prefix("::1").unwrap().contains(ip("::1")));
        assert!(parse_prefix("fd00::1/8").is_err());
        assert!(parse_prefix("fd00::/129").is_err());
        assert!(parse_prefix("not-an-ip").is_err());
    }
}
