//! The `hook` modes (`tng exec`): the preloaded library in the application decides what is
//! captured; this side only serves what the library hands over.
//!
//! - ingress: a CONNECT proxy on `proxy_listen:proxy_port`, the `http_proxy` engine with no
//!   destination filter (the library already filtered), answering 200 only once the tunnel
//!   to the destination is open;
//! - egress: a listener on `0.0.0.0:<origin port>` for every (origin, real) pair; the service
//!   itself was moved to the real port by the library, and gets each connection at
//!   `<address the connection arrived on>:<real port>`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::Context;
use tng_config::{EgressHook, IngressHook};
use tokio::net::{TcpListener, TcpSocket};
use tracing::warn;

use super::Destination;

/// The internal CONNECT proxy's listener, listening at once.
pub async fn ingress(field: &str, hook: &IngressHook) -> anyhow::Result<TcpListener> {
    let port = hook.proxy_port.with_context(|| {
        format!("{field}.hook.proxy_port: not allocated (hook runs under `tng exec`)")
    })?;
    let addr = format!("{}:{port}", hook.proxy_listen);
    TcpListener::bind(&addr)
        .await
        .with_context(|| format!("{field}.hook: cannot listen on {addr}"))
}

/// One socket per origin port, bound on every address but not listening yet.
pub fn egress(field: &str, hook: &EgressHook) -> anyhow::Result<Vec<(TcpSocket, Destination)>> {
    let mut listeners = Vec::new();
    for (origin, real) in &hook.ports {
        let listen = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, *origin));
        let socket = crate::net::bind_unlistened(listen)
            .with_context(|| format!("{field}.hook: cannot listen on {listen}"))?;
        listeners.push((socket, Destination::ArrivalAddress(*real)));
    }
    Ok(listeners)
}

/// Which connections of an egress hook go through the transport; the others are relayed to
/// the application as they are.
#[derive(Debug)]
pub struct EgressPolicy {
    capture_local_traffic: bool,
    /// `host` (`None` = any) and `ifname` of every `capture_listen` entry.
    entries: Vec<(Option<Ipv4Addr>, Option<String>)>,
    /// Interface name → its IPv4 addresses, taken at start-up.
    interfaces: HashMap<String, Vec<Ipv4Addr>>,
}

impl EgressPolicy {
    pub fn new(field: &str, hook: &EgressHook) -> EgressPolicy {
        let interfaces = local_interfaces();
        let entries: Vec<_> = hook
            .capture_listen
            .iter()
            .map(|l| (l.host.filter(|h| !h.is_unspecified()), l.ifname.clone()))
            .collect();
        for (_, ifname) in &entries {
            if let Some(name) = ifname {
                if !interfaces.contains_key(name) {
                    warn!("{field}.hook.capture_listen: interface {name} not found; its entry matches no connection");
                }
            }
        }
        EgressPolicy {
            capture_local_traffic: hook.capture_local_traffic,
            entries,
            interfaces,
        }
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.interfaces.values().any(|ips| ips.contains(&ip))
    }

    /// Whether the connection from `peer` that arrived on `local` is a tunnel connection.
    pub fn encrypted(&self, local: SocketAddr, peer: Option<SocketAddr>) -> bool {
        let IpAddr::V4(local) = local.ip() else {
            return false;
        };
        if !self.capture_local_traffic {
            if let Some(SocketAddr::V4(peer)) = peer {
                if self.is_local(*peer.ip()) {
                    return false;
                }
            }
        }
        if self.entries.is_empty() {
            return true;
        }
        self.entries.iter().any(|(host, ifname)| {
            host.is_none_or(|h| h == local)
                && match ifname {
                    None => true,
                    Some(name) => self
                        .interfaces
                        .get(name)
                        .is_some_and(|ips| ips.contains(&local)),
                }
        })
    }
}

/// The IPv4 addresses of this host's interfaces (empty when they cannot be listed).
fn local_interfaces() -> HashMap<String, Vec<Ipv4Addr>> {
    let mut out: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for ifaddr in addrs {
                let ip = ifaddr
                    .address
                    .as_ref()
                    .and_then(|a| a.as_sockaddr_in())
                    .map(|sin| sin.ip());
                let entry = out.entry(ifaddr.interface_name).or_default();
                if let Some(ip) = ip {
                    entry.push(ip);
                }
            }
        }
        Err(err) => warn!("cannot list the local interfaces: {err}"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(local: bool, entries: Vec<(Option<Ipv4Addr>, Option<String>)>) -> EgressPolicy {
        let mut interfaces = HashMap::new();
        interfaces.insert("eth9".to_string(), vec![Ipv4Addr::new(198, 18, 0, 2)]);
        EgressPolicy {
            capture_local_traffic: local,
            entries,
            interfaces,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn local_peers_bypass_unless_captured() {
        let p = policy(false, vec![(None, None)]);
        assert!(!p.encrypted(addr("127.0.0.1:80"), Some(addr("127.0.0.1:5000"))));
        assert!(!p.encrypted(addr("198.18.0.2:80"), Some(addr("198.18.0.2:5000"))));
        assert!(p.encrypted(addr("198.18.0.2:80"), Some(addr("198.18.0.1:5000"))));
        let p = policy(true, vec![(None, None)]);
        assert!(p.encrypted(addr("127.0.0.1:80"), Some(addr("127.0.0.1:5000"))));
    }

    #[test]
    fn host_and_interface_select_the_arrival_address() {
        let p = policy(true, vec![(Some(Ipv4Addr::new(127, 0, 0, 2)), None)]);
        assert!(p.encrypted(addr("127.0.0.2:80"), Some(addr("127.0.0.1:5000"))));
        assert!(!p.encrypted(addr("127.0.0.3:80"), Some(addr("127.0.0.1:5000"))));
        let p = policy(true, vec![(None, Some("eth9".into()))]);
        assert!(p.encrypted(addr("198.18.0.2:80"), None));
        assert!(!p.encrypted(addr("127.0.0.1:80"), None));
        let p = policy(true, vec![(None, Some("nope0".into()))]);
        assert!(!p.encrypted(addr("198.18.0.2:80"), None));
        let p = policy(true, vec![]);
        assert!(p.encrypted(addr("127.0.0.1:80"), None));
        assert!(!p.encrypted(addr("[::1]:80"), None));
    }
}
