//! Accepting connections and serving HTTP on them.
//!
//! The accept loop only accepts and spawns: whatever a connection needs before HTTP starts
//! (sniffing for direct forwarding, later a TLS or attestation handshake) runs in the
//! connection's own task, so a slow peer never holds up the next `accept()`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn, Instrument};

use crate::http::body::Body;
use crate::shutdown::{Shutdown, DRAIN_TIMEOUT};

/// How long a client may take to send a request head (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP/1.1 + h2c (prior knowledge) connection builder with our defaults.
pub fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one connection until it closes or a graceful shutdown finishes it. Without a
/// watcher (a connection nested in another, e.g. inside a CONNECT tunnel) it simply runs.
pub async fn serve_connection<I, F, Fut>(io: I, watcher: Option<Watcher>, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = builder();
    let conn = builder
        .serve_connection(TokioIo::new(io), service(handler))
        .into_owned();
    run_watched(conn, watcher).await;
}

/// Like [`serve_connection`], for servers that answer `CONNECT` and hand the upgraded
/// connection elsewhere (the HTTP proxy ingress).
pub async fn serve_connection_with_upgrades<I, F, Fut>(io: I, watcher: Watcher, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = builder();
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service(handler))
        .into_owned();
    run_watched(conn, Some(watcher)).await;
}

async fn run_watched<C>(conn: C, watcher: Option<Watcher>)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let result = match watcher {
        Some(watcher) => watcher.watch(conn).await,
        None => conn.await,
    };
    if let Err(err) = result {
        debug!("connection ended with error: {err}");
    }
}

fn service<F, Fut>(
    handler: F,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
> + Clone
       + Send
       + 'static
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = std::sync::Arc::new(handler);
    hyper::service::service_fn(move |req| {
        let fut = handler(req);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    })
}

/// Accepts connections until shutdown, handing each to `on_connection` in its own task, then
/// waits (bounded) for the connections to finish their in-flight requests.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: Shutdown,
    name: String,
    on_connection: F,
) where
    F: Fn(TcpStream, SocketAddr, Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            _ = shutdown.requested() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let span = tracing::info_span!("conn", listener = %name, %peer);
                    tokio::spawn(on_connection(stream, peer, graceful.watcher()).instrument(span));
                }
                Err(err) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    warn!(listener = %name, "accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        info!(listener = %name, open, "draining connections");
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(listener = %name, "connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}
