//! The ingress side: a flow table keyed by (client, destination), one task and one QUIC
//! connection per flow.
//!
//! A flow's life: the first datagram spawns its task and is queued; the task dials (its own
//! endpoint and socket, marked with `so_mark` under netfilter), checks the egress's
//! attestation, then relays both ways until the flow is idle for `idle_timeout_secs`
//! (CONNECTION_CLOSE 0 "idle"). When the connection dies under it (egress restarted, QUIC
//! idle timeout with a peer that sends no keep-alives) the next datagram dials again, so the
//! flow recovers by itself. A flow that cannot be tunnelled (egress unreachable, attestation
//! refused, no IP destination) logs that once, then drops its datagrams — counted — until it
//! has been idle, and only then is tried anew. Nothing here ever stops the listener.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

use super::limit::{allowed, Oversize};
use crate::net::udp_batch::drain_datagrams;
use crate::shutdown::Shutdown;
use crate::transport::rats_tls::security::{ClientSecurity, Framing};

/// Where a flow goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FlowDst {
    Addr(SocketAddr),
    /// `out` of a `mapping_udp` ingress that is not an IP literal (`host:port`).
    Name(Arc<str>),
}

impl fmt::Display for FlowDst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowDst::Addr(a) => a.fmt(f),
            FlowDst::Name(n) => n.fmt(f),
        }
    }
}

/// How replies reach the client: from the listener (`mapping_udp`) or spoofed from the
/// original destination (`netfilter_udp`).
pub trait ReplyPath: Send + Sync + 'static {
    fn reply(&self, client: SocketAddr, from: SocketAddr, payload: &[u8]) -> std::io::Result<()>;

    /// Several replies at once, in order (a path that can batch them overrides this).
    fn reply_all(
        &self,
        client: SocketAddr,
        from: SocketAddr,
        payloads: &[Bytes],
    ) -> std::io::Result<()> {
        payloads
            .iter()
            .try_for_each(|p| self.reply(client, from, p))
    }
}

/// Counters of one ingress, for logs and tests.
#[derive(Debug, Default)]
pub struct IngressCounters {
    pub oversize: Oversize,
    /// Datagrams of flows that could not be tunnelled, or beyond a flow's queue.
    pub dropped: AtomicU64,
}

/// The QUIC client side of one `add_ingress` entry.
pub struct QuicIngress {
    id: usize,
    security: ClientSecurity,
    transport: Arc<quinn::TransportConfig>,
    max_datagram_size: Option<u16>,
    so_mark: Option<u32>,
    idle: Duration,
    metrics: tng_telemetry::InstanceMetrics,
    pub counters: IngressCounters,
    mode: &'static str,
}

impl QuicIngress {
    pub async fn new(
        config: &tng_config::Ingress,
        idle: Duration,
        so_mark: Option<u32>,
        field: &str,
        mode: &'static str,
        metrics: tng_telemetry::InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let security =
            ClientSecurity::new(config, Framing::Quic, so_mark, field, metrics.clone()).await?;
        Ok(Self {
            id: config.id,
            security,
            transport: super::transport(&config.quic, true).context("quic")?,
            max_datagram_size: config.quic.max_datagram_size,
            so_mark,
            idle,
            metrics,
            counters: IngressCounters::default(),
            mode,
        })
    }

    /// Dials the egress and checks its attestation; the connection carries nothing before.
    async fn connect(&self, dst: &FlowDst) -> Result<quinn::Connection, String> {
        let FlowDst::Addr(addr) = dst else {
            return Err(format!(
                "{dst} is not an IP address and port (a mapping_udp ingress dials an IP literal)"
            ));
        };
        let tls = self.security.tls_config().await?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| format!("QUIC TLS configuration: {e}"))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(self.transport.clone());
        let endpoint = self
            .endpoint()
            .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        let host = addr.ip().to_string();
        let connecting = endpoint
            .connect_with(client, *addr, &host)
            .map_err(|e| format!("cannot dial: {e}"))?;
        let conn = connecting
            .await
            .map_err(|e| format!("QUIC handshake failed: {e}"))?;
        let certs = super::peer_certificates(&conn);
        if let Err(reason) = self.security.verify_certificates(certs.as_deref()).await {
            conn.close(super::CLOSE_ATTESTATION.into(), b"attestation refused");
            return Err(format!("egress attestation refused: {reason}"));
        }
        if conn.max_datagram_size().is_none() {
            conn.close(super::CLOSE_OK.into(), b"no datagrams");
            return Err("the egress does not accept QUIC DATAGRAM frames".into());
        }
        Ok(conn)
    }

    /// A fresh endpoint per flow: its own source port, as upstream, and its own socket mark.
    fn endpoint(&self) -> std::io::Result<quinn::Endpoint> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if let Some(mark) = self.so_mark {
            socket.set_mark(mark)?;
        }
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
        let runtime =
            quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
        quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket.into(),
            runtime,
        )
    }
}

/// The flows of one listener.
pub struct FlowTable {
    ingress: Arc<QuicIngress>,
    reply: Arc<dyn ReplyPath>,
    shutdown: Shutdown,
    flows: HashMap<(SocketAddr, FlowDst), mpsc::Sender<Bytes>>,
    /// `(in)` of the access log line.
    local: String,
    inserts: usize,
}

impl FlowTable {
    pub fn new(
        ingress: Arc<QuicIngress>,
        reply: Arc<dyn ReplyPath>,
        local: String,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            ingress,
            reply,
            shutdown,
            flows: HashMap::new(),
            local,
            inserts: 0,
        }
    }

    /// Hands one datagram to its flow, starting the flow if needed. Never waits.
    pub fn dispatch(&mut self, client: SocketAddr, dst: FlowDst, payload: Bytes) {
        let key = (client, dst);
        if let Some(tx) = self.flows.get(&key) {
            match tx.try_send(payload) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.ingress
                        .counters
                        .dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(p)) => {
                    self.flows.remove(&key);
                    return self.start(key, p);
                }
            }
        }
        self.start(key, payload);
    }

    fn start(&mut self, key: (SocketAddr, FlowDst), first: Bytes) {
        self.inserts += 1;
        if self.inserts.is_multiple_of(256) {
            self.flows.retain(|_, tx| !tx.is_closed());
        }
        let (tx, rx) = mpsc::channel(super::FLOW_QUEUE);
        let _ = tx.try_send(first);
        let (client, dst) = key.clone();
        self.flows.insert(key, tx);
        let span = tracing::info_span!("udp_flow", ingress = self.ingress.id, %client, %dst);
        let flow = Flow {
            ingress: self.ingress.clone(),
            reply: self.reply.clone(),
            client,
            dst,
            rx,
            shutdown: self.shutdown.clone(),
            local: self.local.clone(),
        };
        tokio::spawn(flow.run().instrument(span));
    }
}

struct Flow {
    ingress: Arc<QuicIngress>,
    reply: Arc<dyn ReplyPath>,
    client: SocketAddr,
    dst: FlowDst,
    rx: mpsc::Receiver<Bytes>,
    shutdown: Shutdown,
    local: String,
}

enum End {
    Idle,
    Shutdown,
    /// The connection went away; the flow is still wanted.
    Lost(Option<Bytes>),
}

impl Flow {
    async fn run(mut self) {
        let mut unit = self.ingress.metrics.connection();
        let mut pending: Option<Bytes> = None;
        let mut oversize = 0u64;
        loop {
            let first = match pending.take() {
                Some(p) => p,
                None => match self.next_or_idle().await {
                    Some(p) => p,
                    None => break,
                },
            };
            info!(
                client_src = %self.client,
                original_dst = %self.dst,
                "Creating QUIC connection for new client"
            );
            let conn = tokio::select! {
                conn = self.ingress.connect(&self.dst) => conn,
                _ = self.shutdown.requested() => break,
            };
            let conn = match conn {
                Ok(conn) => conn,
                Err(reason) => {
                    unit.failed();
                    warn!("UDP flow not tunnelled, its datagrams are dropped until it has been idle for {:?}: {reason}", self.ingress.idle);
                    self.drain_failed().await;
                    return;
                }
            };
            let remote = conn.remote_address();
            match self.relay(&conn, first, &mut oversize, &unit).await {
                End::Idle => {
                    conn.close(super::CLOSE_OK.into(), b"idle");
                    self.log_end(remote);
                    break;
                }
                End::Shutdown => {
                    conn.close(super::CLOSE_OK.into(), b"shutdown");
                    break;
                }
                End::Lost(next) => {
                    info!(reason = ?conn.close_reason(), "QUIC connection ended; the next datagram dials again");
                    self.log_end(remote);
                    pending = next;
                }
            }
        }
    }

    fn log_end(&self, remote: SocketAddr) {
        info!(
            "downstream_remote={} -> downstream_local={}({}) -> upstream_remote={} encrypted=true attested=false",
            self.client,
            self.local,
            self.ingress.mode,
            remote,
        );
    }

    /// The next datagram, or `None` once the flow has been idle (or on shutdown).
    async fn next_or_idle(&mut self) -> Option<Bytes> {
        tokio::select! {
            p = self.rx.recv() => p,
            _ = tokio::time::sleep(self.ingress.idle) => None,
            _ = self.shutdown.requested() => None,
        }
    }

    async fn drain_failed(&mut self) {
        let ingress = self.ingress.clone();
        ingress.counters.dropped.fetch_add(1, Ordering::Relaxed);
        while self.next_or_idle().await.is_some() {
            ingress.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn relay(
        &mut self,
        conn: &quinn::Connection,
        first: Bytes,
        oversize: &mut u64,
        unit: &tng_telemetry::ConnGuard,
    ) -> End {
        let from = match &self.dst {
            FlowDst::Addr(a) => *a,
            FlowDst::Name(_) => conn.remote_address(),
        };
        let mut next = Some(first);
        let mut last = Instant::now();
        loop {
            if let Some(payload) = next.take() {
                last = Instant::now();
                match allowed(conn, self.ingress.max_datagram_size) {
                    Some((limit, _)) if payload.len() <= limit => {
                        let len = payload.len() as u64;
                        match conn.send_datagram(payload.clone()) {
                            Ok(()) => unit.tx(len),
                            Err(quinn::SendDatagramError::TooLarge) => {
                                self.ingress.counters.oversize.drop(
                                    oversize,
                                    payload.len(),
                                    limit,
                                    "the tunnel's datagram limit",
                                )
                            }
                            Err(_) => return End::Lost(Some(payload)),
                        }
                    }
                    Some((limit, why)) => {
                        self.ingress
                            .counters
                            .oversize
                            .drop(oversize, payload.len(), limit, why)
                    }
                    None => return End::Lost(Some(payload)),
                }
            }
            tokio::select! {
                biased;
                _ = self.shutdown.requested() => return End::Shutdown,
                received = conn.read_datagram() => match received {
                    Ok(reply) => {
                        last = Instant::now();
                        let batch = drain_datagrams(conn, reply, 64);
                        unit.rx(batch.iter().map(|d| d.len() as u64).sum());
                        if let Err(err) = self.reply.reply_all(self.client, from, &batch) {
                            tracing::debug!("reply to the client failed: {err}");
                        }
                    }
                    Err(_) => return End::Lost(None),
                },
                payload = self.rx.recv() => match payload {
                    Some(p) => next = Some(p),
                    None => return End::Shutdown,
                },
                _ = tokio::time::sleep_until(last + self.ingress.idle) => return End::Idle,
            }
        }
    }
}
