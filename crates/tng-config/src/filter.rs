use std::net::Ipv4Addr;

use regex::Regex;

use crate::error::Result;
use crate::json::{compile_regex, Field, Obj};

/// Which destinations go through the tunnel (http_proxy / socks5 `dst_filters`).
#[derive(Debug, Clone)]
pub struct EndpointFilter {
    pub host: HostMatcher,
    /// Inclusive range; `None` matches every port.
    pub ports: Option<(u16, u16)>,
}

#[derive(Debug, Clone)]
pub enum HostMatcher {
    Any,
    /// Envoy-style: `*` alone, `*suffix`, `prefix*` or an exact name (validated).
    Domain(String),
    /// Matched unanchored, as upstream does.
    DomainRegex(Regex),
    Ip(Ipv4Addr),
    IpCidr {
        addr: Ipv4Addr,
        prefix: u8,
    },
}

const HOST_KEYS: [&str; 4] = ["domain", "domain_regex", "ip", "ip_cidr"];
const FILTER_KEYS: [&str; 6] = [
    "domain",
    "domain_regex",
    "ip",
    "ip_cidr",
    "port",
    "port_end",
];

pub(crate) fn parse_filter(field: &Field<'_>) -> Result<EndpointFilter> {
    let mut obj = field.object()?;
    // Upstream silently lets the first host key win and turns typos into match-all; a filter
    // that is wider than written would tunnel (or leak) the wrong traffic, so be strict.
    let given: Vec<&str> = obj.keys().filter(|k| HOST_KEYS.contains(k)).collect();
    if let [first, second, ..] = given.as_slice() {
        return Err(obj.err(format!(
            "more than one host matcher given: `{first}` and `{second}` (use at most one of domain, domain_regex, ip, ip_cidr)"
        )));
    }
    let chosen = given
        .first()
        .copied()
        .and_then(|key| Some((key, obj.field(key)?)));
    let host = match chosen {
        None => HostMatcher::Any,
        Some(("domain", f)) => {
            let pattern = f.string()?;
            check_domain_pattern(&pattern).map_err(|m| f.err(m))?;
            HostMatcher::Domain(pattern)
        }
        Some(("domain_regex", f)) => HostMatcher::DomainRegex(compile_regex(&f)?),
        Some(("ip", f)) => HostMatcher::Ip(parse_ipv4(&f)?),
        Some((_, f)) => {
            let (addr, prefix) = parse_cidr(f.str()?).map_err(|m| f.err(m))?;
            HostMatcher::IpCidr { addr, prefix }
        }
    };
    let ports = parse_port_range(&mut obj)?;
    obj.finish(&FILTER_KEYS)?;
    Ok(EndpointFilter { host, ports })
}

fn check_domain_pattern(pattern: &str) -> std::result::Result<(), String> {
    let last = pattern.len().saturating_sub(1);
    if pattern
        .char_indices()
        .any(|(i, c)| c == '*' && i != 0 && i != last)
    {
        return Err(format!(
            "invalid domain pattern {pattern:?}: `*` is only allowed as the whole pattern, its first character or its last character"
        ));
    }
    Ok(())
}

/// `port` / `port_end` as an inclusive range (shared by dst filters and capture_dst).
pub(crate) fn parse_port_range(obj: &mut Obj<'_>) -> Result<Option<(u16, u16)>> {
    let port = obj.opt("port").map(|f| f.u16()).transpose()?;
    let end = obj.opt("port_end");
    match (port, end) {
        (None, None) => Ok(None),
        (Some(port), None) => Ok(Some((port, port))),
        (None, Some(end)) => Err(end.err("requires `port`")),
        (Some(port), Some(end_field)) => {
            let end = end_field.u16()?;
            if end < port {
                return Err(end_field.err(format!("must be >= port ({port})")));
            }
            Ok(Some((port, end)))
        }
    }
}

pub(crate) fn parse_ipv4(field: &Field<'_>) -> Result<Ipv4Addr> {
    field
        .str()?
        .parse()
        .map_err(|_| field.err("must be an IPv4 address"))
}

/// Strict IPv4 CIDR (host bits must be zero, a bare address is /32), like upstream's `cidr` crate.
pub(crate) fn parse_cidr(text: &str) -> std::result::Result<(Ipv4Addr, u8), String> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: Ipv4Addr = addr_text
        .parse()
        .map_err(|_| format!("invalid CIDR {text:?}: not an IPv4 address"))?;
    let prefix = match prefix_text {
        None => 32,
        Some(p) if !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|n| *n <= 32).ok_or_else(|| {
                format!("invalid CIDR {text:?}: prefix length must be between 0 and 32")
            })?
        }
        Some(_) => {
            return Err(format!(
                "invalid CIDR {text:?}: prefix length must be between 0 and 32"
            ))
        }
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let bits = u32::from(addr);
    if bits & !mask != 0 {
        let network = Ipv4Addr::from(bits & mask);
        return Err(format!(
            "invalid CIDR {text:?}: host bits are not zero (the network is {network}/{prefix})"
        ));
    }
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Ok((Ipv4Addr::new(10, 0, 0, 0), 8))
        );
        assert_eq!(parse_cidr("10.1.2.3"), Ok((Ipv4Addr::new(10, 1, 2, 3), 32)));
        assert_eq!(parse_cidr("0.0.0.0/0"), Ok((Ipv4Addr::UNSPECIFIED, 0)));
        assert!(parse_cidr("10.1.1.1/24").is_err());
        assert!(parse_cidr("10.1.1.0/33").is_err());
        assert!(parse_cidr("10.1.1.0/").is_err());
        assert!(parse_cidr("10.1.1.0/+8").is_err());
    }

    #[test]
    fn domain_patterns() {
        for ok in ["*", "*.foo.com", "www.foo.*", "www.foo.com", "*foo*", ""] {
            assert!(check_domain_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["www.*.com", "a*b"] {
            assert!(check_domain_pattern(bad).is_err(), "{bad}");
        }
    }
}
