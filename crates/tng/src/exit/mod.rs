//! Where traffic leaves the gateway in plaintext: the service behind an egress, or a
//! destination an ingress does not tunnel (no `dst_filters` match, a `direct_forward` rule).
//! Every socket opened here is marked with the entry's `so_mark`, so the capture rules of
//! this host let it through instead of capturing it again.

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::transport::Target;

/// Opens the plaintext connection to `target`.
pub fn connect(
    target: &Target,
    so_mark: Option<u32>,
) -> impl std::future::Future<Output = io::Result<TcpStream>> + Send + 'static {
    // Owned before the first await: the future must not borrow its caller (it runs inside
    // connection tasks generic over their stream type).
    let (host, port) = (target.host().to_string(), target.port());
    async move { crate::net::connect(&host, port, so_mark).await }
}

/// Pipes `client` to `target` as it is, after replaying `prefix` (bytes already read from the
/// client while deciding where it goes). Half-closes propagate.
pub async fn pipe<S>(mut client: S, prefix: Bytes, target: Target, so_mark: Option<u32>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut server = match connect(&target, so_mark).await {
        Ok(server) => server,
        Err(err) => return debug!(%target, "cannot connect for a plaintext forward: {err}"),
    };
    info!(%target, "forwarding connection in plaintext");
    let result = match write_prefix(&mut server, prefix).await {
        Ok(()) => tokio::io::copy_bidirectional(&mut client, &mut server)
            .await
            .map(|_| ()),
        Err(err) => Err(err),
    };
    if let Err(err) = result {
        debug!(%target, "plaintext forward ended: {err}");
    }
}

async fn write_prefix(server: &mut TcpStream, prefix: Bytes) -> io::Result<()> {
    server.write_all(&prefix).await
}
