//! The egress dispatcher: every captured datagram goes to the QUIC endpoint of its original
//! destination, started on the first datagram for that destination and stopped once it has
//! had no connection for the idle timeout.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tng_capture::udp_socket::SpoofingSender;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::quic_socket::CapturedSocket;
use crate::shutdown::Shutdown;
use crate::transport::quic::egress::{Backend, QuicEgress};

/// Datagrams queued per destination while its endpoint catches up; beyond that they are
/// lost, as UDP allows, and QUIC retransmits.
const QUEUE: usize = 1024;

/// The service of a captured destination is that destination.
struct OriginalDst(SocketAddr);

impl Backend for OriginalDst {
    async fn resolve(&self, _remote: SocketAddr) -> Result<SocketAddr, String> {
        Ok(self.0)
    }
}

pub struct Dispatcher {
    pub transport: Arc<QuicEgress>,
    /// What every endpoint starts with (each connection may get a fresh certificate).
    pub server: quinn::ServerConfig,
    pub sender: Arc<SpoofingSender>,
    pub idle: Duration,
}

impl Dispatcher {
    pub async fn serve(self, socket: UdpSocket, mut shutdown: Shutdown) {
        let mut endpoints: HashMap<SocketAddrV4, mpsc::Sender<(SocketAddr, Bytes)>> =
            HashMap::new();
        let mut buf = vec![0u8; crate::transport::quic::MAX_UDP_PAYLOAD];
        loop {
            let received = tokio::select! {
                r = super::recv(&socket, &mut buf) => r,
                _ = shutdown.requested() => break,
            };
            let c = match received {
                Ok(c) => c,
                Err(err) => {
                    tracing::debug!("receive on the netfilter_udp listener: {err}");
                    continue;
                }
            };
            let datagram = (SocketAddr::V4(c.src), Bytes::copy_from_slice(&buf[..c.len]));
            let datagram = match endpoints.get(&c.original_dst) {
                Some(tx) => match tx.try_send(datagram) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => continue,
                    // The endpoint stopped after being idle: a new one takes over.
                    Err(mpsc::error::TrySendError::Closed(d)) => d,
                },
                None => datagram,
            };
            match self.start(c.original_dst, &shutdown) {
                Ok(tx) => {
                    let _ = tx.try_send(datagram);
                    endpoints.insert(c.original_dst, tx);
                }
                Err(err) => {
                    warn!(original_dst = %c.original_dst, "cannot serve QUIC for the destination: {err}")
                }
            }
            if endpoints.len() > 64 {
                endpoints.retain(|_, tx| !tx.is_closed());
            }
        }
    }

    /// A QUIC endpoint for `dst`, fed from the returned channel.
    fn start(
        &self,
        dst: SocketAddrV4,
        shutdown: &Shutdown,
    ) -> anyhow::Result<mpsc::Sender<(SocketAddr, Bytes)>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let socket = Arc::new(CapturedSocket::new(dst, rx, self.sender.clone()));
        let runtime =
            quinn::default_runtime().ok_or_else(|| anyhow::anyhow!("no async runtime"))?;
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(self.server.clone()),
            socket,
            runtime,
        )?;
        let local = SocketAddr::V4(dst);
        info!(original_dst = %dst, "QUIC endpoint for a captured destination");
        tokio::spawn(self.transport.clone().serve(
            endpoint,
            Arc::new(OriginalDst(local)),
            local,
            shutdown.clone(),
            Some(self.idle),
        ));
        Ok(tx)
    }
}
