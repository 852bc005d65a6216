//! The tables `tng exec` hands over in the environment, and the capture decision.

use std::net::Ipv4Addr;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct IngressTable {
    #[serde(default)]
    pub ingresses: Vec<IngressEntry>,
}

#[derive(Debug, Deserialize)]
pub struct IngressEntry {
    pub proxy_port: u16,
    #[serde(default)]
    pub capture_rules: Vec<CaptureRule>,
    #[serde(default)]
    pub capture_local_traffic: bool,
}

#[derive(Debug, Deserialize)]
pub struct CaptureRule {
    pub host_cidr: String,
    pub port: u16,
    #[serde(default)]
    pub port_end: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EgressTable {
    #[serde(default)]
    pub entries: Vec<EgressEntry>,
}

#[derive(Debug, Deserialize)]
pub struct EgressEntry {
    pub origin_port: u16,
    pub real_port: u16,
}

impl CaptureRule {
    fn matches(&self, ip: Ipv4Addr, port: u16) -> bool {
        let end = self.port_end.unwrap_or(self.port);
        if port < self.port || port > end {
            return false;
        }
        if self.host_cidr == "*" {
            return true;
        }
        let (addr, prefix) = match self.host_cidr.split_once('/') {
            Some((a, p)) => (a, p.parse::<u32>().ok()),
            None => (self.host_cidr.as_str(), Some(32)),
        };
        let (Ok(addr), Some(prefix)) = (addr.parse::<Ipv4Addr>(), prefix) else {
            return false;
        };
        if prefix > 32 {
            return false;
        }
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        u32::from(ip) & mask == u32::from(addr) & mask
    }
}

impl IngressTable {
    /// The proxy port to hand a connection to `ip:port` to, or `None` to leave it alone.
    /// The first matching rule decides; a local destination of an instance that does not
    /// capture local traffic stays uncaptured.
    pub fn decide(&self, ip: Ipv4Addr, port: u16, local_ips: &[Ipv4Addr]) -> Option<u16> {
        for entry in &self.ingresses {
            if entry.capture_rules.iter().any(|r| r.matches(ip, port)) {
                let local = ip.is_loopback() || local_ips.contains(&ip);
                if local && !entry.capture_local_traffic {
                    return None;
                }
                return Some(entry.proxy_port);
            }
        }
        None
    }

    pub fn rules(&self) -> usize {
        self.ingresses.iter().map(|e| e.capture_rules.len()).sum()
    }
}

impl EgressTable {
    pub fn real_port(&self, origin: u16) -> Option<u16> {
        self.entries
            .iter()
            .find(|e| e.origin_port == origin)
            .map(|e| e.real_port)
    }

    pub fn origin_port(&self, real: u16) -> Option<u16> {
        self.entries
            .iter()
            .find(|e| e.real_port == real)
            .map(|e| e.origin_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> IngressTable {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn first_rule_decides() {
        let t = table(
            r#"{"ingresses":[{"proxy_port":1,"capture_rules":[{"host_cidr":"127.0.0.1","port":30001},{"host_cidr":"*","port":30010,"port_end":30012}],"capture_local_traffic":false},
                            {"proxy_port":2,"capture_rules":[{"host_cidr":"10.0.0.0/8","port":30010,"port_end":30020}],"capture_local_traffic":true}]}"#,
        );
        let lo = Ipv4Addr::LOCALHOST;
        // Local and not captured by the first instance: the second is not consulted.
        assert_eq!(t.decide(lo, 30001, &[]), None);
        assert_eq!(t.decide(Ipv4Addr::new(10, 1, 2, 3), 30011, &[]), Some(1));
        assert_eq!(t.decide(Ipv4Addr::new(10, 1, 2, 3), 30015, &[]), Some(2));
        assert_eq!(
            t.decide(
                Ipv4Addr::new(10, 1, 2, 3),
                30011,
                &[Ipv4Addr::new(10, 1, 2, 3)]
            ),
            None
        );
        assert_eq!(t.decide(Ipv4Addr::new(11, 1, 2, 3), 30015, &[]), None);
        assert_eq!(t.rules(), 3);
    }

    #[test]
    fn egress_lookups() {
        let t: EgressTable =
            serde_json::from_str(r#"{"entries":[{"origin_port":30005,"real_port":24095}]}"#)
                .unwrap();
        assert_eq!(t.real_port(30005), Some(24095));
        assert_eq!(t.origin_port(24095), Some(30005));
        assert_eq!(t.real_port(1), None);
    }
}
