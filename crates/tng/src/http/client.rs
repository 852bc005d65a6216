//! Outbound HTTP: a pooled keep-alive client whose connector marks sockets (so capture rules
//! never re-capture our own traffic) and optionally wraps them in TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::body::{Body, BoxError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub type HttpClient = Client<Connector, Body>;

/// Options for the sockets a client opens.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// `SO_MARK` for every outbound socket (netfilter capture skips marked packets).
    pub so_mark: Option<u32>,
    /// Present when the scheme is https; the client then speaks TLS to the peer.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub fn build(options: ConnectOptions) -> HttpClient {
    build_limited(options, &tng_config::Limits::default())
}

/// A client whose response heads are bounded by `limits` (`max_headers`, `max_header_bytes`):
/// a peer sending more makes the request fail (the callers answer 502).
pub fn build_limited(options: ConnectOptions, limits: &tng_config::Limits) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http1_max_headers(limits.max_headers)
        // hyper's floor for its read buffer is 8 KiB.
        .http1_max_buf_size(limits.max_header_bytes.max(8192))
        .build(Connector { options })
}

/// Builds a TLS client configuration trusting the system roots plus `extra_ca_pems`.
pub fn tls_config(
    extra_ca_pems: &[std::path::PathBuf],
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use anyhow::Context as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // One unusable system certificate must not disable TLS altogether.
        let _ = roots.add(cert);
    }
    for path in extra_ca_pems {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read TLS CA certificate file {}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("unusable CA certificate in {}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Clone)]
pub struct Connector {
    options: ConnectOptions,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let options = self.options.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("URI has no host")?.to_string();
            let tls = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
            let bare_host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let tcp = tokio::time::timeout(
                CONNECT_TIMEOUT,
                crate::net::connect(&bare_host, port, options.so_mark),
            )
            .await
            .map_err(|_| ConnectTimeout)??;
            if !tls {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            }
            let config = options.tls.ok_or("https URL but no TLS configuration")?;
            let name = rustls::pki_types::ServerName::try_from(bare_host)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
        })
    }
}

/// Distinguishes "the peer did not answer in time" (504) from other connect failures (502).
#[derive(Debug)]
pub struct ConnectTimeout;

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connect timed out after {CONNECT_TIMEOUT:?}")
    }
}

impl std::error::Error for ConnectTimeout {}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A client error with its whole cause chain: hyper's top-level message alone ("client
/// error (Connect)") does not tell an operator what happened.
pub fn describe_client_error(err: &hyper_util::client::legacy::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Whether the error chain says the peer did not answer in time.
pub fn is_timeout(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<ConnectTimeout>() {
            return true;
        }
        source = cause.source();
    }
    false
}
