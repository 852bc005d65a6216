//! Where connections come from, and where they were going.
//!
//! Every capture mode is a set of listeners plus a rule for the original destination of each
//! accepted connection:
//! - [`mapping`]: a fixed destination per listener;
//! - [`netfilter`]: the accepted socket's local address (ingress, TPROXY) or conntrack's pre-NAT
//!   destination (egress, REDIRECT), fed by iptables rules that live as long as their guard;
//! - [`http_proxy`] and [`socks5`] (ingress): the application names the destination itself,
//!   and [`filter`] decides which destinations go through the tunnel;
//! - [`hook`] (`tng exec`): the application's preloaded library hands connections to a
//!   CONNECT proxy (ingress) or moves the application to another port (egress);
//! - [`direct_forward`] (egress): connections whose first request matches a rule bypass the
//!   tunnel.
//!
//! - [`udp_mapping`] and [`udp_netfilter`]: datagram sources of the UDP modes, each datagram
//!   with its client and original destination.
//!
//! Capture hands each connection to a [`crate::transport`]; it never looks inside the tunnel.

pub mod direct_forward;
pub mod filter;
pub mod hook;
pub mod http_proxy;
pub mod mapping;
pub mod netfilter;
pub mod socks5;
pub mod udp_mapping;
pub mod udp_netfilter;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

pub use netfilter::Capture;

/// How to learn an accepted connection's original destination.
#[derive(Clone, Copy, Debug)]
pub enum Destination {
    Fixed(SocketAddr),
    /// TPROXY keeps the original destination as the socket's local address.
    LocalAddress,
    /// REDIRECT rewrote the destination; conntrack remembers the original.
    OriginalDst,
    /// Egress hook: the address the connection arrived on, with this port.
    ArrivalAddress(u16),
}

impl Destination {
    pub fn resolve(&self, stream: &TcpStream, listen_port: u16) -> io::Result<SocketAddr> {
        let dst = match self {
            Destination::Fixed(addr) => return Ok(*addr),
            Destination::LocalAddress => stream.local_addr()?,
            Destination::ArrivalAddress(port) => {
                return Ok(SocketAddr::new(stream.local_addr()?.ip(), *port))
            }
            Destination::OriginalDst => SocketAddr::V4(tng_capture::socket::original_dst(stream)?),
        };
        if dst.ip().is_loopback() && dst.port() == listen_port {
            return Err(io::Error::other(format!(
                "recursion detected: the original destination {dst} is this listener itself"
            )));
        }
        if !dst.is_ipv4() {
            return Err(io::Error::other(format!(
                "IPv6 destination {dst} is not supported"
            )));
        }
        Ok(dst)
    }
}

/// What an ingress listener's connections are.
pub enum Entry {
    /// The application connected to its destination itself; the capture mode knows where.
    Transparent(Destination),
    /// The application speaks a proxy protocol that names the destination.
    HttpProxy(Arc<http_proxy::HttpProxy>),
    Socks5(Arc<socks5::Socks5>),
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        match self {
            Entry::Transparent(destination) => Entry::Transparent(*destination),
            Entry::HttpProxy(proxy) => Entry::HttpProxy(proxy.clone()),
            Entry::Socks5(socks) => Entry::Socks5(socks.clone()),
        }
    }
}

/// The listeners of one ingress, and the netfilter rules feeding them (removed on drop).
pub struct IngressListeners {
    pub listeners: Vec<(TcpListener, Entry)>,
    pub captures: Vec<Capture>,
}
