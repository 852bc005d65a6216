//! Raw framing: the tunnel's bytes are the application's, both ways, half-closes included.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

use tng_telemetry::ConnGuard;

use crate::net::Metered;
use crate::transport::Target;

/// `unit` counts the stream and its bytes on the tunnel side.
pub async fn forward<S>(tunnel: S, upstream: SocketAddr, so_mark: Option<u32>, unit: ConnGuard)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tunnel = Metered::new(tunnel, unit);
    let target = Target::from(upstream);
    let mut service = match crate::exit::connect(&target, so_mark).await {
        Ok(service) => service,
        Err(err) => {
            tunnel
                .unit()
                .failed_with(tng_telemetry::Outcome::UpstreamUnreachable);
            return warn!(%target, "cannot connect to the service: {err}");
        }
    };
    let size = super::super::COPY_BUFFER;
    if let Err(err) =
        tokio::io::copy_bidirectional_with_sizes(&mut tunnel, &mut service, size, size).await
    {
        debug!(%target, "tunnel ended: {err}");
    }
}
