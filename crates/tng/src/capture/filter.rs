//! `dst_filters` matching (upstream's endpoint matcher semantics).

use std::net::Ipv4Addr;

use tng_config::{EndpointFilter, HostMatcher};

/// A proxied destination as the client named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(Ipv4Addr),
    Domain(String),
}

impl Host {
    pub fn parse(host: &str) -> Host {
        match host.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Domain(host.to_string()),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Domain(d) => write!(f, "{d}"),
        }
    }
}

/// An empty list tunnels everything; otherwise any matching filter tunnels.
pub fn should_tunnel(filters: &[EndpointFilter], host: &Host, port: u16) -> bool {
    filters.is_empty() || filters.iter().any(|f| matches(f, host, port))
}

fn matches(filter: &EndpointFilter, host: &Host, port: u16) -> bool {
    if let Some((first, last)) = filter.ports {
        if port < first || port > last {
            return false;
        }
    }
    match (&filter.host, host) {
        (HostMatcher::Any, _) => true,
        (HostMatcher::Domain(pattern), Host::Domain(name)) => domain_matches(pattern, name),
        (HostMatcher::DomainRegex(re), Host::Domain(name)) => re.is_match(name),
        (HostMatcher::Ip(want), Host::Ip(ip)) => want == ip,
        (HostMatcher::IpCidr { addr, prefix }, Host::Ip(ip)) => {
            let mask = if *prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(*prefix))
            };
            u32::from(*ip) & mask == u32::from(*addr) & mask
        }
        _ => false,
    }
}

/// Envoy-style wildcards: `*`, `*suffix`, `prefix*`, or an exact name (case-sensitive).
fn domain_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        name.len() > suffix.len() && name.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        name.len() > prefix.len() && name.starts_with(prefix)
    } else {
        pattern == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(host: HostMatcher, ports: Option<(u16, u16)>) -> EndpointFilter {
        EndpointFilter { host, ports }
    }

    #[test]
    fn wildcards_follow_upstream() {
        assert!(domain_matches("*.foo.com", "www.foo.com"));
        assert!(domain_matches("*.foo.com", "a.b.foo.com"));
        assert!(!domain_matches("*.foo.com", "foo.com"));
        assert!(domain_matches("www.foo.*", "www.foo.cn"));
        assert!(domain_matches("*", "a.b"));
        assert!(!domain_matches("www.foo.com", "WWW.foo.com"));
    }

    #[test]
    fn host_kinds_do_not_cross() {
        let any_domain = f(HostMatcher::Domain("*".into()), None);
        assert!(!matches(&any_domain, &Host::parse("198.18.0.1"), 80));
        assert!(matches(&any_domain, &Host::parse("svc.local"), 80));
        let cidr = f(
            HostMatcher::IpCidr {
                addr: "198.18.0.0".parse().unwrap(),
                prefix: 15,
            },
            Some((8000, 8080)),
        );
        assert!(matches(&cidr, &Host::parse("198.19.255.1"), 8080));
        assert!(!matches(&cidr, &Host::parse("198.20.0.1"), 8080));
        assert!(!matches(&cidr, &Host::parse("198.18.0.1"), 8081));
        assert!(should_tunnel(&[], &Host::parse("x"), 1));
        assert!(!should_tunnel(&[cidr], &Host::parse("x"), 8000));
    }
}
