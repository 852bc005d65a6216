//! The egress side: one QUIC endpoint, one task per connection, each with its own backend
//! UDP socket. A failed handshake or a refused attestation ends that connection only; the
//! endpoint keeps accepting.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use super::limit::{allowed, Oversize};
use crate::net::udp_batch::{drain_datagrams, BatchReader, BatchSender};
use crate::shutdown::Shutdown;
use crate::transport::rats_tls::security::{Framing, ServerSecurity};

/// Where the datagrams of an accepted connection go.
pub trait Backend: Send + Sync + 'static {
    /// The service's address for a connection that arrived from `remote` at `local`.
    fn resolve(
        &self,
        remote: SocketAddr,
    ) -> impl std::future::Future<Output = Result<SocketAddr, String>> + Send;
}

/// The QUIC server side of one `add_egress` entry.
pub struct QuicEgress {
    id: usize,
    security: ServerSecurity,
    transport: Arc<quinn::TransportConfig>,
    max_datagram_size: Option<u16>,
    so_mark: Option<u32>,
    idle: Duration,
    metrics: tng_telemetry::InstanceMetrics,
    pub oversize: Oversize,
    mode: &'static str,
}

impl QuicEgress {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        config: &tng_config::Egress,
        idle: Duration,
        so_mark: Option<u32>,
        streams: bool,
        field: &str,
        mode: &'static str,
        metrics: tng_telemetry::InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let security =
            ServerSecurity::new(config, Framing::Quic, so_mark, field, metrics.clone()).await?;
        Ok(Self {
            id: config.id,
            security,
            transport: super::transport(&config.quic, streams).context("quic")?,
            max_datagram_size: config.quic.max_datagram_size,
            so_mark,
            idle,
            metrics,
            oversize: Oversize::default(),
            mode,
        })
    }

    /// The endpoint's server configuration (the per-connection one may carry a fresh
    /// certificate, see [`Self::server_config`]).
    pub async fn server_config(&self) -> Result<quinn::ServerConfig, String> {
        let tls = self.security.tls_config().await?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| format!("QUIC TLS configuration: {e}"))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(self.transport.clone());
        // Clients are dialled by IP and talk straight to us: a Retry round trip buys nothing.
        config.migration(false);
        Ok(config)
    }

    /// Accepts connections until shutdown, or with `linger` until the endpoint has had no
    /// connection for that long; each connection runs on its own task.
    pub async fn serve<B: Backend>(
        self: Arc<Self>,
        endpoint: quinn::Endpoint,
        backend: Arc<B>,
        local: SocketAddr,
        mut shutdown: Shutdown,
        linger: Option<Duration>,
    ) {
        let mut quiet_since = Instant::now();
        loop {
            let check = linger.map_or(Duration::from_secs(5), |l| l.min(Duration::from_secs(5)));
            let incoming = tokio::select! {
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => incoming,
                    None => break,
                },
                _ = shutdown.requested() => break,
                _ = tokio::time::sleep(check), if linger.is_some() => {
                    if endpoint.open_connections() > 0 {
                        quiet_since = Instant::now();
                    } else if linger.is_some_and(|l| quiet_since.elapsed() >= l) {
                        break;
                    }
                    continue;
                }
            };
            quiet_since = Instant::now();
            let remote = incoming.remote_address();
            let span = tracing::info_span!("quic_conn", egress = self.id, %remote);
            let (this, backend, shutdown) = (self.clone(), backend.clone(), shutdown.clone());
            tokio::spawn(
                async move { this.connection(incoming, backend, local, shutdown).await }
                    .instrument(span),
            );
        }
        endpoint.close(super::CLOSE_OK.into(), b"shutdown");
        // Bounded: the closes above go out before the socket does.
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    }

    async fn connection<B: Backend>(
        &self,
        incoming: quinn::Incoming,
        backend: Arc<B>,
        local: SocketAddr,
        mut shutdown: Shutdown,
    ) {
        let remote = incoming.remote_address();
        let mut unit = self.metrics.connection();
        let config = match self.server_config().await {
            Ok(config) => config,
            Err(err) => {
                unit.failed();
                return warn!("QUIC connection refused: {err}");
            }
        };
        let connecting = match incoming.accept_with(Arc::new(config)) {
            Ok(connecting) => connecting,
            Err(err) => {
                unit.failed();
                return warn!("QUIC connection refused: {err}");
            }
        };
        let conn = tokio::select! {
            conn = connecting => conn,
            _ = shutdown.requested() => return,
        };
        let conn = match conn {
            Ok(conn) => conn,
            Err(err) => {
                unit.failed();
                return warn!("QUIC handshake failed: {err}");
            }
        };
        let certs = super::peer_certificates(&conn);
        if let Err(reason) = self.security.verify_certificates(certs.as_deref()).await {
            unit.failed();
            conn.close(super::CLOSE_ATTESTATION.into(), b"attestation refused");
            // Nothing was read from the connection: the service receives zero datagrams.
            return warn!("ingress attestation refused: {reason}");
        }
        info!(%remote, "Accepted QUIC connection from ingress");
        let upstream = match backend.resolve(remote).await {
            Ok(upstream) => upstream,
            Err(err) => {
                unit.failed();
                conn.close(super::CLOSE_OK.into(), b"no backend");
                return warn!("no backend for the connection: {err}");
            }
        };
        let socket = match self.backend_socket(upstream).await {
            Ok(socket) => socket,
            Err(err) => {
                unit.failed();
                conn.close(super::CLOSE_OK.into(), b"no backend");
                return warn!(%upstream, "cannot open the backend socket: {err}");
            }
        };
        let why = self
            .relay(&conn, &socket, upstream, &unit, &mut shutdown)
            .await;
        conn.close(super::CLOSE_OK.into(), why.as_bytes());
        info!(
            "downstream_remote={remote} -> downstream_local={local}({}) -> upstream_remote={upstream}",
            self.mode
        );
    }

    async fn backend_socket(&self, upstream: SocketAddr) -> std::io::Result<UdpSocket> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if let Some(mark) = self.so_mark {
            socket.set_mark(mark)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        socket.connect(upstream).await?;
        Ok(socket)
    }

    /// Both directions until the connection ends or both have been idle; the reason for the
    /// CONNECTION_CLOSE.
    async fn relay(
        &self,
        conn: &quinn::Connection,
        socket: &UdpSocket,
        upstream: SocketAddr,
        unit: &tng_telemetry::ConnGuard,
        shutdown: &mut Shutdown,
    ) -> &'static str {
        let (mut reader, sender) = match (BatchReader::new(socket, 8), BatchSender::new(socket)) {
            (Ok(reader), Ok(sender)) => (reader, sender),
            (Err(err), _) | (_, Err(err)) => {
                debug!("backend socket cannot be used: {err}");
                return "done";
            }
        };
        let mut last = Instant::now();
        let mut oversize = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.requested() => return "shutdown",
                received = conn.read_datagram() => match received {
                    Ok(payload) => {
                        last = Instant::now();
                        let batch = drain_datagrams(conn, payload, 64);
                        unit.rx(batch.iter().map(|d| d.len() as u64).sum());
                        // UDP: a lost datagram is the application's to handle.
                        if let Err(err) = sender.send(socket, upstream, &batch).await {
                            debug!("backend send failed: {err}");
                        }
                    }
                    Err(err) => {
                        debug!("QUIC connection ended: {err}");
                        return "done";
                    }
                },
                received = reader.recv(socket) => match received {
                    Ok(filled) => {
                        last = Instant::now();
                        for (_, datagram) in reader.datagrams(filled) {
                            let n = datagram.len();
                            match allowed(conn, self.max_datagram_size) {
                                Some((limit, _)) if n <= limit => {
                                    unit.tx(n as u64);
                                    if conn.send_datagram(Bytes::copy_from_slice(datagram)).is_err() {
                                        return "done";
                                    }
                                }
                                Some((limit, why)) => self.oversize.drop(&mut oversize, n, limit, why),
                                None => return "done",
                            }
                        }
                    }
                    // ICMP port unreachable from a backend that is not up yet: keep the
                    // tunnel, the service may come.
                    Err(err) => debug!("backend receive failed: {err}"),
                },
                _ = tokio::time::sleep_until(last + self.idle) => return "done",
            }
        }
    }
}
