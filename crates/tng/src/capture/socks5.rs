//! Ingress `socks5`: a SOCKS5 server (RFC 1928, username/password per RFC 1929, CONNECT only).
//! Destinations matching `dst_filters` go through the tunnel (the reply waits until it is
//! open); the rest are piped straight to the destination.

use std::sync::Arc;

use tng_config::{EndpointFilter, Socks5Auth};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use super::filter::{should_tunnel, Host};
use crate::transport::{IngressTransport, Target};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

/// Reply codes (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    ConnectionRefused = 5,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

pub struct Socks5 {
    pub transport: Arc<IngressTransport>,
    pub filters: Vec<EndpointFilter>,
    pub auth: Option<Socks5Auth>,
}

#[derive(Debug, thiserror::Error)]
pub enum Socks5Error {
    #[error("not a SOCKS5 client (version byte {0})")]
    Version(u8),
    #[error("the client offers no acceptable authentication method")]
    NoAcceptableMethod,
    #[error("authentication failed")]
    AuthFailed,
    #[error("unsupported command {0}")]
    Command(u8),
    #[error("unsupported address type {0}")]
    AddressType(u8),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Socks5 {
    /// Serves one SOCKS5 client, whose address is `client`; `unit` counts it (and its bytes)
    /// in the entry's metrics.
    pub async fn handle<S>(
        self: Arc<Self>,
        stream: S,
        client: Option<std::net::SocketAddr>,
        unit: tng_telemetry::ConnGuard,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut stream = crate::net::Metered::new(stream, unit);
        let (host, port) = match self.handshake(&mut stream).await {
            Ok(target) => target,
            Err(err) => return debug!("SOCKS5 handshake failed: {err}"),
        };
        let tunnel = should_tunnel(&self.filters, &host, port);
        let target = Target::new(host.to_string(), port);
        if tunnel {
            let opened = match self.transport.open(&target).await {
                Ok(opened) => opened,
                Err(err) => {
                    warn!(%target, "tunnel not opened: {err}");
                    stream.unit().failed();
                    let _ = reply(&mut stream, Reply::GeneralFailure).await;
                    return;
                }
            };
            if reply(&mut stream, Reply::Succeeded).await.is_ok() {
                let guard = crate::http::server::ConnGuard::nested(client);
                opened.serve(stream, Some(guard)).await;
            }
            return;
        }
        let mut server = match crate::exit::connect(&target, None).await {
            Ok(server) => server,
            Err(err) => {
                warn!(%target, "cannot connect: {err}");
                let _ = reply(&mut stream, Reply::ConnectionRefused).await;
                return;
            }
        };
        if reply(&mut stream, Reply::Succeeded).await.is_ok() {
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut server).await;
        }
    }

    async fn handshake<S>(&self, stream: &mut S) -> Result<(Host, u16), Socks5Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut greeting = [0u8; 2];
        stream.read_exact(&mut greeting).await?;
        if greeting[0] != VERSION {
            return Err(Socks5Error::Version(greeting[0]));
        }
        let mut methods = vec![0u8; usize::from(greeting[1])];
        stream.read_exact(&mut methods).await?;
        let wanted = if self.auth.is_some() {
            USER_PASS
        } else {
            NO_AUTH
        };
        if !methods.contains(&wanted) {
            stream.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
            return Err(Socks5Error::NoAcceptableMethod);
        }
        stream.write_all(&[VERSION, wanted]).await?;
        if let Some(auth) = &self.auth {
            let mut head = [0u8; 2];
            stream.read_exact(&mut head).await?;
            let mut user = vec![0u8; usize::from(head[1])];
            stream.read_exact(&mut user).await?;
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            let mut pass = vec![0u8; usize::from(len[0])];
            stream.read_exact(&mut pass).await?;
            let ok = user == auth.username.as_bytes() && pass == auth.password.as_bytes();
            stream.write_all(&[1, if ok { 0 } else { 1 }]).await?;
            if !ok {
                return Err(Socks5Error::AuthFailed);
            }
        }
        let mut request = [0u8; 4];
        stream.read_exact(&mut request).await?;
        if request[0] != VERSION {
            return Err(Socks5Error::Version(request[0]));
        }
        let host = match request[3] {
            1 => {
                let mut ip = [0u8; 4];
                stream.read_exact(&mut ip).await?;
                Host::Ip(ip.into())
            }
            3 => {
                let mut len = [0u8; 1];
                stream.read_exact(&mut len).await?;
                let mut name = vec![0u8; usize::from(len[0])];
                stream.read_exact(&mut name).await?;
                Host::parse(&String::from_utf8_lossy(&name))
            }
            other => {
                reply(stream, Reply::AddressTypeNotSupported).await?;
                return Err(Socks5Error::AddressType(other));
            }
        };
        let mut port = [0u8; 2];
        stream.read_exact(&mut port).await?;
        if request[1] != 1 {
            reply(stream, Reply::CommandNotSupported).await?;
            return Err(Socks5Error::Command(request[1]));
        }
        Ok((host, u16::from_be_bytes(port)))
    }
}

async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, code: Reply) -> std::io::Result<()> {
    // The bound address is not meaningful for a proxy that may tunnel: report 0.0.0.0:0.
    stream
        .write_all(&[VERSION, code as u8, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
}
