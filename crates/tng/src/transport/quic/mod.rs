//! The QUIC transport of the UDP modes (spec: `hook-udp-quic.md` §4): QUIC v1, TLS 1.3 with
//! the rats-TLS certificates and checks, ALPN `rats-quic`, one RFC 9221 DATAGRAM frame per
//! UDP payload, verbatim, and no streams.
//!
//! - [`ingress`]: one QUIC connection per (client, destination) flow, each on its own
//!   endpoint and UDP socket; the flow table hands datagrams to flow tasks, so a handshake
//!   never holds up other clients.
//! - [`egress`]: one endpoint; each accepted connection gets its own backend UDP socket.
//!
//! Attestation is checked right after the handshake, before the first datagram is relayed
//! in either direction: until then nothing read from the peer leaves the gateway.

pub mod egress;
pub mod ingress;
mod limit;

use std::sync::Arc;
use std::time::Duration;

pub use limit::Oversize;

/// The largest UDP payload; also what we advertise as `max_datagram_frame_size`, as upstream.
pub const MAX_UDP_PAYLOAD: usize = 65535;

/// Application close codes: 0 is what upstream sends for an orderly end (`idle`, `done`).
const CLOSE_OK: u32 = 0;
/// Our peer's attestation was refused after the handshake.
const CLOSE_ATTESTATION: u32 = 0x12e;

/// Datagrams queued per flow while its handshake runs or the tunnel is busy; beyond this they
/// are dropped (UDP semantics) and counted.
const FLOW_QUEUE: usize = 1024;

/// The QUIC parameters both sides share. `streams`: the netfilter egress refuses streams
/// (advertises 0), as upstream.
fn transport(
    quic: &tng_config::Quic,
    streams: bool,
) -> anyhow::Result<Arc<quinn::TransportConfig>> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(quic.max_idle_timeout)?;
    t.max_idle_timeout(Some(idle));
    // Upstream peers send no PINGs; ours keep a silent flow's connection alive so a pause
    // longer than the QUIC idle timeout does not kill it.
    t.keep_alive_interval(Some(keep_alive(quic.max_idle_timeout)));
    let receive = quic
        .max_datagram_size
        .filter(|_| !streams)
        .map_or(MAX_UDP_PAYLOAD, usize::from);
    t.datagram_receive_buffer_size(Some(receive.max(4 * 1024 * 1024)));
    t.datagram_send_buffer_size(4 * 1024 * 1024);
    if !streams {
        t.max_concurrent_bidi_streams(0u32.into());
        t.max_concurrent_uni_streams(0u32.into());
    }
    Ok(Arc::new(t))
}

fn keep_alive(idle: Duration) -> Duration {
    (idle / 3).max(Duration::from_millis(50))
}

/// The peer's certificate chain as quinn reports it after the handshake.
fn peer_certificates(
    conn: &quinn::Connection,
) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
    conn.peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()
        .map(|b| *b)
}
