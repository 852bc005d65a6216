//! Which transport carries a captured connection to the other side.
//!
//! - [`ohttp`]: every HTTP request sealed on its own (RFC 9458, chunked), so an L7 gateway in
//!   between still routes by path;
//! - [`rats_tls`]: TLS 1.3 with attested certificates, carrying any TCP byte stream (raw, or
//!   HTTP/2 CONNECT streams on pooled connections).
//!
//! Both sides are one enum each with one arm per transport: the ingress side opens a
//! [`Tunnel`] for a captured connection (or carries one proxied HTTP request), the egress side
//! serves a connection that arrived through the tunnel and hands its contents to the
//! service ([`crate::exit`]).

pub mod ohttp;
pub mod quic;
pub mod rats_tls;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::http::body::Body;
use crate::http::body_timer::RequestBody;
use crate::http::server::ConnGuard;

/// An application connection's stream, whatever captured it (a socket, a CONNECT upgrade, a
/// SOCKS5 stream).
pub trait AppStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AppStream for T {}

/// Where an application connection was going, as its capture mode learnt it: an address
/// (transparent modes) or a name the application gave a proxy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    host: String,
    port: u16,
}

impl Target {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip().to_string(), addr.port())
    }
}

/// `host:port`, with brackets around an IPv6 literal.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a tunnel could not be opened; the reason an operator (and an `http_proxy` client, in
/// its 502) reads.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct OpenError {
    pub reason: String,
    /// The egress was reached but its attestation was refused (not merely unreachable).
    pub attestation: bool,
}

impl OpenError {
    pub fn unreachable(reason: String) -> Self {
        Self {
            reason,
            attestation: false,
        }
    }

    pub fn attestation(reason: String) -> Self {
        Self {
            reason,
            attestation: true,
        }
    }

    /// How the connection that needed this tunnel ended, for its access log.
    pub fn outcome(&self) -> tng_telemetry::Outcome {
        if self.attestation {
            tng_telemetry::Outcome::AttestationFailed
        } else {
            tng_telemetry::Outcome::UpstreamUnreachable
        }
    }
}

/// A peer address for spans, `-` when unknown (a connection nested in another).
pub struct PeerLabel(pub Option<std::net::SocketAddr>);

impl std::fmt::Display for PeerLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(peer) => write!(f, "{peer}"),
            None => f.write_str("-"),
        }
    }
}

/// The ingress side of an entry's transport.
pub enum IngressTransport {
    Ohttp(Arc<ohttp::ingress::OhttpIngress>),
    RatsTls(Arc<rats_tls::ingress::RatsTlsIngress>),
}

impl IngressTransport {
    /// The counted unit of one application connection to `target`. A rats-TLS tunnel carries
    /// it as one byte stream, so the connection gets its own span and access-log line; OHTTP
    /// logs each request it carries instead.
    pub fn unit(
        &self,
        metrics: &tng_telemetry::InstanceMetrics,
        client: Option<std::net::SocketAddr>,
        target: &Target,
    ) -> tng_telemetry::ConnGuard {
        match self {
            IngressTransport::Ohttp(_) => metrics.connection(),
            IngressTransport::RatsTls(_) => {
                metrics.stream(&PeerLabel(client), target.to_string(), false)
            }
        }
    }

    /// Whether an opened tunnel has had its egress's attestation verified.
    pub fn verifies(&self) -> bool {
        match self {
            IngressTransport::Ohttp(ohttp) => ohttp.verifies(),
            IngressTransport::RatsTls(rats_tls) => rats_tls.verifies(),
        }
    }

    /// Prepares the tunnel for one application connection to `target`. Nothing of the
    /// application has been read yet, so a failure here delivers zero bytes anywhere.
    pub async fn open(&self, target: &Target) -> Result<Tunnel, OpenError> {
        match self {
            IngressTransport::Ohttp(ohttp) => Ok(Tunnel::Ohttp(ohttp.open(target))),
            IngressTransport::RatsTls(rats_tls) => {
                Ok(Tunnel::RatsTls(rats_tls.open(target).await?))
            }
        }
    }

    /// Carries one request of an HTTP proxy client (absolute-form, not `CONNECT`) to `target`;
    /// `client` is that client's address.
    pub async fn request(
        &self,
        target: &Target,
        client: Option<std::net::IpAddr>,
        req: Request<RequestBody>,
    ) -> Response<Body> {
        match self {
            IngressTransport::Ohttp(ohttp) => ohttp.request(target, client, req).await,
            IngressTransport::RatsTls(rats_tls) => rats_tls.request(target, req).await,
        }
    }
}

/// An opened tunnel, waiting for the application connection it carries.
pub enum Tunnel {
    Ohttp(ohttp::ingress::HttpTunnel),
    RatsTls(rats_tls::ingress::StreamTunnel),
}

impl Tunnel {
    /// Carries the application connection until either side closes. `guard` is the
    /// listener's (limits, graceful shutdown, the application's address); `None` for a
    /// connection nested in another.
    pub async fn serve<S: AppStream>(self, app: S, guard: Option<ConnGuard>) {
        match self {
            Tunnel::Ohttp(tunnel) => tunnel.serve(app, guard).await,
            Tunnel::RatsTls(tunnel) => tunnel.serve(app, guard).await,
        }
    }
}

/// The egress side of an entry's transport.
pub enum EgressTransport {
    Ohttp(Arc<ohttp::egress::OhttpEgress>),
    RatsTls(Arc<rats_tls::egress::RatsTlsEgress>),
}

impl EgressTransport {
    /// Serves one connection that arrived at an egress listener, whose contents go to
    /// `upstream` (the service).
    pub async fn serve<S: AppStream>(
        self: Arc<Self>,
        stream: S,
        upstream: SocketAddr,
        guard: ConnGuard,
    ) {
        match &*self {
            EgressTransport::Ohttp(ohttp) => ohttp.clone().serve(stream, upstream, guard).await,
            EgressTransport::RatsTls(rats_tls) => {
                rats_tls
                    .clone()
                    .serve(Box::new(stream), upstream, guard)
                    .await
            }
        }
    }

    /// `Some` when the egress may only listen while it holds keys (a `peer_shared` cluster
    /// node): the value says whether it may serve now.
    pub fn serving(&self) -> Option<watch::Receiver<bool>> {
        match self {
            EgressTransport::Ohttp(ohttp) => ohttp.serving(),
            EgressTransport::RatsTls(_) => None,
        }
    }
}
