//! `netfilter_udp`: datagrams TPROXYed to a listener that learns each one's original
//! destination (spec: `hook-udp-quic.md` §5).
//!
//! - Ingress: locally generated datagrams to the captured destinations arrive at a listener
//!   on 127.0.0.1; each (client, original destination) is a flow of the QUIC ingress, which
//!   dials the original destination itself (the egress captures it there). Replies go back to
//!   the client spoofed from the original destination.
//! - Egress: QUIC packets for the captured destinations arrive at a listener on 0.0.0.0;
//!   [`egress`] runs one QUIC endpoint per original destination, whose service *is* that
//!   destination.
//!
//! The rules live exactly as long as the [`Capture`] guard; the listener is bound before they
//! are installed and serves until after they are removed, so no datagram of a captured flow
//! goes out unprotected while the gateway starts or stops.

pub mod egress;
mod quic_socket;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use tng_capture::rules::{RuleSet, Selection};
use tng_capture::udp_rules::{UdpEgressRules, UdpIngressRules};
use tng_capture::udp_socket::{self, SpoofingSender};
use tng_config::{CaptureDst, NetfilterUdp};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::info;

use super::netfilter::{install_tproxy, prepare, Capture};
use crate::shutdown::Shutdown;
use crate::transport::quic::ingress::{FlowDst, FlowTable, ReplyPath};

/// Replies written as if the original destination had sent them.
pub struct SpoofedReply(pub Arc<SpoofingSender>);

impl ReplyPath for SpoofedReply {
    fn reply(&self, client: SocketAddr, from: SocketAddr, payload: &[u8]) -> std::io::Result<()> {
        match (client, from) {
            (SocketAddr::V4(client), SocketAddr::V4(from)) => self.0.send(from, client, payload),
            _ => Err(std::io::Error::other("netfilter_udp carries IPv4 only")),
        }
    }
}

/// A free UDP port outside every `capture_dst` port range (the listener must not capture
/// its own traffic), for an entry whose configuration names none.
pub fn free_listen_port(ip: Ipv4Addr, dsts: &[CaptureDst]) -> std::io::Result<u16> {
    for _ in 0..64 {
        let port = std::net::UdpSocket::bind((ip, 0))?.local_addr()?.port();
        let captured = dsts
            .iter()
            .any(|d| d.ports.is_some_and(|(a, b)| (a..=b).contains(&port)));
        if !captured {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "64 random ports all fell inside a capture_dst port range",
    ))
}

/// Binds an ingress's listener on 127.0.0.1 and installs its rules.
pub fn bind_ingress(id: usize, config: &NetfilterUdp) -> anyhow::Result<(UdpSocket, Capture)> {
    bind(
        id,
        "add_ingress",
        Ipv4Addr::LOCALHOST,
        config,
        |listen_port, selection| {
            let rules = UdpIngressRules {
                id,
                listen_port,
                so_mark: config.so_mark,
                selection,
            };
            (rules.render(), rules.fw_mark(), rules.route_table())
        },
    )
}

/// Binds an egress's listener on 0.0.0.0 and installs its rules.
pub fn bind_egress(id: usize, config: &NetfilterUdp) -> anyhow::Result<(UdpSocket, Capture)> {
    bind(
        id,
        "add_egress",
        Ipv4Addr::UNSPECIFIED,
        config,
        |listen_port, selection| {
            let rules = UdpEgressRules {
                id,
                listen_port,
                so_mark: config.so_mark,
                capture_local_traffic: config.capture_local_traffic,
                selection,
            };
            (rules.render(), rules.fw_mark(), rules.route_table())
        },
    )
}

/// The listener first, then the rules `render` makes for its port (rule set, fwmark, policy
/// table): nothing is captured before something reads it.
fn bind(
    id: usize,
    list: &str,
    ip: Ipv4Addr,
    config: &NetfilterUdp,
    render: impl FnOnce(u16, Selection) -> (RuleSet, u32, u32),
) -> anyhow::Result<(UdpSocket, Capture)> {
    let field = format!("{list}[{id}].netfilter_udp");
    let selection = prepare(
        &field,
        true,
        &config.capture_dst,
        &config.capture_cgroup,
        &config.nocapture_cgroup,
    )?;
    let addr = SocketAddrV4::new(ip, config.listen_port.unwrap_or(0));
    let socket = udp_socket::tproxy_socket(addr)
        .with_context(|| format!("{field}: cannot open a transparent UDP listener on {addr}"))?;
    let socket = UdpSocket::from_std(socket)?;
    let listen_port = socket.local_addr()?.port();
    let (set, fw_mark, route_table) = render(listen_port, selection);
    let capture = install_tproxy(&field, set, fw_mark, route_table)?;
    info!(%field, listen_port, "netfilter_udp capture installed");
    Ok((socket, capture))
}

/// Reads the next captured datagram into `buf`.
pub(crate) async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<udp_socket::Captured> {
    socket
        .async_io(Interest::READABLE, || {
            udp_socket::recv_captured(socket, buf)
        })
        .await
}

/// The receive loop of a `netfilter_udp` ingress: it only reads and hands over.
pub async fn serve_ingress(socket: UdpSocket, mut table: FlowTable, mut shutdown: Shutdown) {
    let mut buf = vec![0u8; crate::transport::quic::MAX_UDP_PAYLOAD];
    loop {
        let received = tokio::select! {
            r = recv(&socket, &mut buf) => r,
            _ = shutdown.requested() => break,
        };
        match received {
            Ok(c) => table.dispatch(
                SocketAddr::V4(c.src),
                FlowDst::Addr(SocketAddr::V4(c.original_dst)),
                Bytes::copy_from_slice(&buf[..c.len]),
            ),
            Err(err) => tracing::debug!("receive on the netfilter_udp listener: {err}"),
        }
    }
}
