//! The rats-TLS egress: terminates the attested TLS connection, verifies the ingress when
//! `verify` asks for it, and forwards what the tunnel carries to the service — the raw byte
//! stream, or each `CONNECT` stream of a multiplexed connection as a connection of its own.
//!
//! Phases per accepted connection: [`first_byte`](RatsTlsEgress::serve) (a connection that
//! sends nothing is closed, as upstream does after 5 s) → `handshake` (bounded by
//! `limits.header_read_timeout`) → `verify_peer` → `dispatch` on the negotiated ALPN →
//! [`raw`] or [`h2`] → `forward` to the service ([`crate::exit`]). Early data is never
//! accepted: a 2.10+ upstream ingress offering 0-RTT falls back to a full handshake.

pub mod h2;
mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tng_telemetry::InstanceMetrics;
use tokio::io::AsyncReadExt;
use tracing::{debug, warn, Instrument, Span};

use super::security::{Framing, ServerSecurity};
use crate::capture::direct_forward::Rewind;
use crate::http::server::ConnGuard;
use crate::shutdown::Shutdown;
use crate::transport::AppStream;

/// A connection that sends no byte for this long is closed (upstream: 5 s).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RatsTlsEgress {
    id: usize,
    security: ServerSecurity,
    so_mark: Option<u32>,
    limits: Arc<tng_config::Limits>,
    shutdown: Shutdown,
    /// One counted unit per tunnelled stream (per `CONNECT` stream when multiplexed).
    metrics: InstanceMetrics,
}

impl RatsTlsEgress {
    pub async fn new(
        config: &tng_config::Egress,
        so_mark: Option<u32>,
        field: &str,
        shutdown: &Shutdown,
        metrics: InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let framing = Framing::from_multiplex(config.rats_tls.multiplex);
        Ok(Self {
            id: config.id,
            security: ServerSecurity::new(config, framing, so_mark, field, metrics.clone()).await?,
            so_mark,
            limits: Arc::new(config.limits.clone()),
            shutdown: shutdown.clone(),
            metrics,
        })
    }

    /// The stream is boxed: generic, the phases' futures trip the compiler's higher-ranked
    /// lifetime inference when proven `Send` through the accept loop.
    pub async fn serve(
        self: Arc<Self>,
        mut stream: Box<dyn AppStream>,
        upstream: SocketAddr,
        guard: ConnGuard,
    ) {
        let mut first = [0u8; 1];
        let stream = match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.read(&mut first)).await {
            Ok(Ok(1)) => Rewind::new(bytes::Bytes::copy_from_slice(&first), stream),
            Ok(_) => return,
            Err(_) => return debug!("no byte within {FIRST_BYTE_TIMEOUT:?}; closing"),
        };
        let acceptor = match self.security.acceptor().await {
            Ok(acceptor) => acceptor,
            Err(err) => return warn!(egress = self.id, "{err}"),
        };
        let deadline = self.limits.header_read_timeout;
        let tls = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                let reason = handshake_failed(self.security.framing(), &err);
                return warn!(egress = self.id, "TLS handshake failed: {reason}");
            }
            Err(_) => return warn!(egress = self.id, "no TLS handshake within {deadline:?}"),
        };
        if let Err(reason) = self.security.verify_peer(tls.get_ref().1).await {
            // Nothing has been read from the tunnel yet: the service receives zero bytes.
            return warn!(egress = self.id, "ingress attestation refused: {reason}");
        }
        let framing = Framing::negotiated(tls.get_ref().1.alpn_protocol());
        match framing {
            Framing::Raw | Framing::Quic => {
                let unit = self.unit(guard.peer(), upstream);
                let span = unit.span().cloned().unwrap_or_else(Span::current);
                // Held until the tunnel ends, so shutdown waits (bounded) for it.
                let _guard = guard;
                raw::forward(tls, upstream, self.so_mark, unit)
                    .instrument(span)
                    .await
            }
            Framing::H2 => {
                let peer = guard.peer();
                let this = self.clone();
                let dial = h2::ServiceDial {
                    target: upstream.into(),
                    so_mark: self.so_mark,
                };
                h2::serve(
                    tls,
                    dial,
                    &self.limits,
                    guard,
                    self.shutdown.clone(),
                    Arc::new(move || this.unit(peer, upstream)),
                )
                .await
            }
        }
    }
}

impl RatsTlsEgress {
    /// One tunnelled stream: counted, with its connection span and access-log line.
    fn unit(&self, peer: Option<SocketAddr>, upstream: SocketAddr) -> tng_telemetry::ConnGuard {
        self.metrics.stream(
            &crate::transport::PeerLabel(peer),
            upstream.to_string(),
            self.security.verifies(),
        )
    }
}

/// The reason an operator reads; an ALPN refusal almost always means the two sides disagree
/// on `rats_tls.multiplex`, which rustls' wording does not say.
fn handshake_failed(framing: Framing, err: &std::io::Error) -> String {
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::NoApplicationProtocol) = tls {
        let accepted = String::from_utf8_lossy(framing.alpn());
        return format!(
            "ALPN mismatch: the ingress does not offer \"{accepted}\" (rats_tls.multiplex: {} \
             here); rats_tls.multiplex must be the same on both sides",
            accepted == "h2"
        );
    }
    err.to_string()
}
