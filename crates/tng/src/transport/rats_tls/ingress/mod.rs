//! The rats-TLS ingress: for each application connection an attested TLS connection (raw
//! framing) or a `CONNECT` stream on a pooled one (multiplexed), verified before a single
//! application byte is sent — unlike upstream 2.10+, which sends the first chunk (or 0-RTT
//! early data) before it has verified the egress.

mod connect;
pub mod h2;
mod pool;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use super::security::{ClientSecurity, Framing};
use crate::error::TngError;
use crate::http::body::{boxed, Body};
use crate::http::body_timer::RequestBody;
use crate::http::server::ConnGuard;
use crate::transport::{AppStream, OpenError, Target};

pub struct RatsTlsIngress {
    framing: Framing,
    security: ClientSecurity,
    so_mark: Option<u32>,
    pool: pool::Pool,
}

impl RatsTlsIngress {
    pub async fn new(
        config: &tng_config::Ingress,
        so_mark: Option<u32>,
        field: &str,
        metrics: tng_telemetry::InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let framing = Framing::from_multiplex(config.rats_tls.multiplex);
        Ok(Self {
            framing,
            security: ClientSecurity::new(config, framing, so_mark, field, metrics).await?,
            so_mark,
            pool: pool::Pool::new(&config.rats_tls, so_mark),
        })
    }

    pub fn verifies(&self) -> bool {
        self.security.verifies()
    }

    pub async fn open(self: &Arc<Self>, target: &Target) -> Result<StreamTunnel, OpenError> {
        let io = match self.framing {
            Framing::Raw | Framing::Quic => TunnelIo::Raw(Box::new(
                connect::attested_connection(&self.security, target, self.so_mark).await?,
            )),
            Framing::H2 => {
                let (upgraded, slot) = self.pool.stream(&self.security, target).await?;
                TunnelIo::H2(TokioIo::new(upgraded), slot)
            }
        };
        Ok(StreamTunnel { io })
    }

    /// An HTTP proxy client's plain request: sent as HTTP/1.1 over a tunnel of its own.
    pub async fn request(
        self: &Arc<Self>,
        target: &Target,
        req: Request<RequestBody>,
    ) -> Response<Body> {
        let tunnel = match self.open(target).await {
            Ok(tunnel) => tunnel,
            Err(err) => {
                return TngError::new(StatusCode::BAD_GATEWAY, "TunnelOpenFailed", err.to_string())
                    .into_response()
            }
        };
        let (mut send, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(tunnel.io)).await {
                Ok(pair) => pair,
                Err(err) => {
                    return TngError::new(
                        StatusCode::BAD_GATEWAY,
                        "TunnelForwardError",
                        err.to_string(),
                    )
                    .into_response()
                }
            };
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                debug!("proxied request's tunnel ended: {err}");
            }
        });
        let (mut parts, body) = req.into_parts();
        crate::http::headers::strip_connection_specific(&mut parts.headers);
        // The request is routed by its absolute target, so the service sees that authority
        // (RFC 9112 §3.2.2), in origin-form: the destination is the tunnel's.
        if let Some(authority) = parts.uri.authority() {
            if let Ok(host) = http::HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(http::header::HOST, host);
            }
        }
        if let Some(path) = parts.uri.path_and_query() {
            if let Ok(uri) = path.as_str().parse() {
                parts.uri = uri;
            }
        }
        parts.version = http::Version::HTTP_11;
        match send.send_request(Request::from_parts(parts, body)).await {
            Ok(response) => response.map(boxed),
            Err(err) => TngError::new(
                StatusCode::BAD_GATEWAY,
                "TunnelForwardError",
                format!("forwarding to {target} failed: {err}"),
            )
            .into_response(),
        }
    }
}

/// An opened, verified tunnel for one application connection.
pub struct StreamTunnel {
    io: TunnelIo,
}

impl StreamTunnel {
    /// Copies both ways until both directions ended; each side's EOF half-closes the other
    /// (`close_notify` + FIN, or `END_STREAM`).
    pub async fn serve<S: AppStream>(self, mut app: S, _guard: Option<ConnGuard>) {
        let mut io = self.io;
        let size = super::COPY_BUFFER;
        if let Err(err) =
            tokio::io::copy_bidirectional_with_sizes(&mut app, &mut io, size, size).await
        {
            debug!("tunnel ended: {err}");
        }
    }
}

/// The tunnel's byte stream: a TLS connection of its own, or an HTTP/2 stream holding its
/// slot in the pool.
enum TunnelIo {
    Raw(Box<TlsStream<TcpStream>>),
    /// The slot is held, not read: dropping it frees the stream's place in the pool.
    H2(TokioIo<Upgraded>, #[allow(dead_code)] pool::StreamSlot),
}

impl AsyncRead for TunnelIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelIo::Raw(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            TunnelIo::H2(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TunnelIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TunnelIo::Raw(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            TunnelIo::H2(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TunnelIo::Raw(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            TunnelIo::H2(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            TunnelIo::Raw(s) => s.is_write_vectored(),
            TunnelIo::H2(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelIo::Raw(s) => Pin::new(s.as_mut()).poll_flush(cx),
            TunnelIo::H2(s, _) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelIo::Raw(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            TunnelIo::H2(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
