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
pub async fn connect(target: &Target, so_mark: Option<u32>) -> io::Result<TcpStream> {
    crate::net::connect(target.host(), target.port(), so_mark).await
}

/// Pipes `client` to `target` as it is, after replaying `prefix` (bytes already read from the
/// client while deciding where it goes). Half-closes propagate.
pub async fn pipe<S>(mut client: S, prefix: Bytes, target: &Target, so_mark: Option<u32>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let result = async {
        let mut server = connect(target, so_mark).await?;
        info!(%target, "forwarding connection in plaintext");
        server.write_all(&prefix).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await
    }
    .await;
    if let Err(err) = result {
        debug!(%target, "plaintext forward ended: {err}");
    }
}
