//! The `connect` → `handshake` → `verify_peer` phases: one attested TLS connection to the
//! egress endpoint. Nothing of the application has been read when this runs, so a failure at
//! any phase delivers zero application bytes.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use super::super::security::{ClientSecurity, Framing};
use crate::transport::{OpenError, Target};

/// TCP connect plus TLS handshake; the egress is expected to answer both promptly.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn attested_connection(
    security: &ClientSecurity,
    target: &Target,
    so_mark: Option<u32>,
) -> Result<TlsStream<TcpStream>, OpenError> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let tcp = crate::net::connect(target.host(), target.port(), so_mark)
            .await
            .map_err(|e| OpenError::unreachable(format!("cannot connect to {target}: {e}")))?;
        let _ = crate::net::set_tunnel_keepalive(&tcp);
        let connector = security
            .connector()
            .await
            .map_err(|e| OpenError::unreachable(format!("rats-TLS with {target}: {e}")))?;
        connector
            .connect(security.server_name(target.host()), tcp)
            .await
            .map_err(|e| handshake_failed(target, security.framing(), e))
    })
    .await
    .map_err(|_| {
        OpenError::unreachable(format!(
            "no TLS handshake with {target} within {HANDSHAKE_TIMEOUT:?}"
        ))
    })??;
    security
        .verify_peer(tls.get_ref().1)
        .await
        .map_err(|reason| {
            OpenError::attestation(format!("attestation of {target} refused: {reason}"))
        })?;
    debug!(%target, "rats-TLS connection established");
    Ok(tls)
}

/// The reason an operator reads; an ALPN refusal (alert 120) almost always means the two
/// sides disagree on `rats_tls.multiplex`, which rustls' wording does not say.
fn handshake_failed(target: &Target, framing: Framing, err: std::io::Error) -> OpenError {
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) = tls
    {
        let offered = String::from_utf8_lossy(framing.alpn());
        return OpenError::unreachable(format!(
            "TLS handshake with {target} failed: ALPN mismatch: the egress does not accept \
             \"{offered}\" (rats_tls.multiplex: {} here); rats_tls.multiplex must be the same \
             on both sides",
            offered == "h2"
        ));
    }
    OpenError::unreachable(format!("TLS handshake with {target} failed: {err}"))
}
