//! `mapping_udp`: datagrams arriving at a fixed `in` socket go to a fixed `out`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use tokio::net::UdpSocket;
use tracing::warn;

use crate::net::udp_batch::{BatchReader, BatchSender};
use crate::shutdown::Shutdown;
use crate::transport::quic::egress::Backend;
use crate::transport::quic::ingress::{FlowDst, FlowTable, ReplyPath};

/// Replies leave from the listener, so the client sees them from `in`.
pub struct ListenerReply {
    socket: Arc<UdpSocket>,
    sender: BatchSender,
}

impl ListenerReply {
    pub fn new(socket: Arc<UdpSocket>) -> std::io::Result<Self> {
        let sender = BatchSender::new(&socket)?;
        Ok(Self { socket, sender })
    }
}

impl ReplyPath for ListenerReply {
    fn reply(&self, client: SocketAddr, _from: SocketAddr, payload: &[u8]) -> std::io::Result<()> {
        self.socket.try_send_to(payload, client).map(|_| ())
    }

    fn reply_all(
        &self,
        client: SocketAddr,
        _from: SocketAddr,
        payloads: &[Bytes],
    ) -> std::io::Result<()> {
        self.sender.try_send(&self.socket, client, payloads)
    }
}

pub async fn bind_ingress(
    field: &str,
    config: &tng_config::MappingUdp,
) -> anyhow::Result<UdpSocket> {
    UdpSocket::bind(config.in_addr).await.with_context(|| {
        format!(
            "{field}.mapping_udp.in: cannot listen on {}",
            config.in_addr
        )
    })
}

/// `out` as the flows see it: an address, or the text that fails each flow.
pub fn ingress_destination(config: &tng_config::MappingUdp) -> FlowDst {
    match config.out_host.parse::<std::net::IpAddr>() {
        Ok(ip) => FlowDst::Addr(SocketAddr::new(ip, config.out_port)),
        Err(_) => FlowDst::Name(format!("{}:{}", config.out_host, config.out_port).into()),
    }
}

/// The receive loop of a `mapping_udp` ingress: it only reads and hands over.
pub async fn serve_ingress(
    socket: Arc<UdpSocket>,
    dst: FlowDst,
    mut table: FlowTable,
    mut shutdown: Shutdown,
) {
    let mut reader = match BatchReader::new(&socket, 32) {
        Ok(reader) => reader,
        Err(err) => return tracing::error!("the UDP listener cannot be read: {err}"),
    };
    loop {
        let received = tokio::select! {
            r = reader.recv(&socket) => r,
            _ = shutdown.requested() => break,
        };
        match received {
            Ok(n) => {
                for (client, payload) in reader.datagrams(n) {
                    table.dispatch(client, dst.clone(), Bytes::copy_from_slice(payload));
                }
            }
            // ICMP errors of earlier replies surface here; the socket itself is fine.
            Err(err) => tracing::debug!("receive on the UDP listener: {err}"),
        }
    }
}

/// The service behind a `mapping_udp` egress; a DNS name is resolved per connection.
pub struct MappingBackend {
    pub host: String,
    pub port: u16,
}

impl Backend for MappingBackend {
    async fn resolve(&self, _remote: SocketAddr) -> Result<SocketAddr, String> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect::<Vec<_>>();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| {
                warn!(host = %self.host, "no address");
                format!("{} has no address", self.host)
            })
    }
}

/// The egress's QUIC socket on `in`.
pub fn bind_egress(
    field: &str,
    config: &tng_config::MappingUdp,
) -> anyhow::Result<std::net::UdpSocket> {
    std::net::UdpSocket::bind(config.in_addr).with_context(|| {
        format!(
            "{field}.mapping_udp.in: cannot listen on {}",
            config.in_addr
        )
    })
}
