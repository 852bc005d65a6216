//! Accepting connections and serving HTTP on them, within the listener's [`Limits`].
//!
//! The accept loop only accepts and spawns: whatever a connection needs before HTTP starts
//! (sniffing for direct forwarding, later a TLS or attestation handshake) runs in the
//! connection's own task, so a slow peer never holds up the next `accept()`.
//!
//! Hyper enforces header count and size on HTTP/1 (431) and HTTP/2 (431 / stream reset), but
//! its own header-read timer also fires on idle keep-alive connections and closes without a
//! status, and hyper-util's protocol sniffing has no timer at all. So the connection timers
//! (head read → 408, keep-alive idle → close) live in [`GuardedIo`], which sees every read.
//! The request body's timer (a stalled body → 408) lives in the body handed to the handler
//! ([`TimedBody`]), the one place that knows the gateway is waiting for the client.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown, Watcher};
use tng_config::Limits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn, Instrument};

use crate::error::TngError;
use crate::http::body::{boxed, text_response, Body, BoxError};
use crate::http::body_timer::{BodyReadTimeout, RequestBody, TimedBody};
pub use crate::http::conn_timers::ConnTracker;
use crate::http::conn_timers::{close_response, GuardedIo, InFlightBody};
use crate::shutdown::{Shutdown, DRAIN_TIMEOUT};

/// What a served connection carries from its listener: the graceful-shutdown watcher, the
/// listener's limits and its slot in `max_connections`.
pub struct ConnGuard {
    watcher: Option<Watcher>,
    limits: Arc<Limits>,
    _permit: Option<OwnedSemaphorePermit>,
    peer: Option<SocketAddr>,
    /// Where the connection and body timers count the limits they enforce.
    metrics: Option<tng_telemetry::InstanceMetrics>,
}

impl ConnGuard {
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// The accepted connection's peer (`None` for a connection nested in another).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Replaces the peer with the client a PROXY protocol header announced.
    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    /// For a connection nested in another one (a SOCKS5 or `CONNECT` stream): default limits,
    /// no draining of its own, and the outer connection's peer.
    pub fn nested(peer: Option<SocketAddr>) -> Self {
        ConnGuard {
            peer,
            ..nested_guard()
        }
    }
}

/// An HTTP/1.1 + h2c (prior knowledge) connection builder with our defaults and `limits`.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        // Our own timers replace hyper's (see the module comment).
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        // A head that does not fit the read buffer is refused with 431 by hyper; heads that
        // fit but exceed `max_header_bytes` are refused by `check_head`.
        .max_buf_size(limits.max_header_bytes.max(8192) + 1);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves one connection until it closes, a connection timer fires or a graceful shutdown
/// finishes it. Without a guard (a connection nested in another, e.g. inside a CONNECT
/// tunnel) it runs with default limits and outside graceful shutdown.
pub async fn serve_connection<I, F, Fut>(io: I, guard: Option<ConnGuard>, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let guard = guard.unwrap_or_else(nested_guard);
    let (io, tracker) = GuardedIo::new(io, guard.limits.clone(), guard.metrics.clone());
    let builder = builder(&guard.limits);
    let conn = builder
        .serve_connection(
            TokioIo::new(io),
            service(
                handler,
                tracker,
                guard.limits.clone(),
                guard.metrics.clone(),
            ),
        )
        .into_owned();
    run_watched(conn, guard).await;
}

/// Like [`serve_connection`], for servers that answer `CONNECT` and hand the upgraded
/// connection elsewhere (the HTTP proxy ingress). The handler must call
/// [`ConnTracker::upgraded`] (found in the request's extensions) for a connection it takes
/// over, so the connection timers stop.
pub async fn serve_connection_with_upgrades<I, F, Fut>(io: I, guard: ConnGuard, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let (io, tracker) = GuardedIo::new(io, guard.limits.clone(), guard.metrics.clone());
    let builder = builder(&guard.limits);
    let conn = builder
        .serve_connection_with_upgrades(
            TokioIo::new(io),
            service(
                handler,
                tracker,
                guard.limits.clone(),
                guard.metrics.clone(),
            ),
        )
        .into_owned();
    run_watched(conn, guard).await;
}

fn nested_guard() -> ConnGuard {
    ConnGuard {
        watcher: None,
        limits: Arc::new(Limits::default()),
        _permit: None,
        peer: None,
        metrics: None,
    }
}

async fn run_watched<C>(conn: C, guard: ConnGuard)
where
    C: GracefulConnection<Error = BoxError>,
{
    let result = match guard.watcher {
        Some(watcher) => watcher.watch(conn).await,
        None => conn.await,
    };
    if let Err(err) = result {
        let too_large = err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large);
        if too_large {
            // Hyper answered 431 itself (too many header lines, or a head over its buffer).
            warn!(
                max_headers = guard.limits.max_headers,
                max_header_bytes = guard.limits.max_header_bytes,
                "request head over the limits; answered 431 and closed the connection"
            );
        } else {
            debug!("connection ended with error: {err}");
        }
    }
}

fn service<F, Fut>(
    handler: F,
    tracker: ConnTracker,
    limits: Arc<Limits>,
    metrics: Option<tng_telemetry::InstanceMetrics>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
> + Clone
       + Send
       + 'static
where
    F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let in_flight = tracker.request_started();
        // HTTP/2 refuses streams beyond the advertised limit itself (`REFUSED_STREAM`, which
        // hyper does not surface); what is seen here is a stream taking the connection's last
        // slot, after which the client has to wait for one to end.
        if req.version() == http::Version::HTTP_2
            && in_flight.concurrent() >= limits.max_concurrent_streams as usize
        {
            if let Some(metrics) = &metrics {
                metrics.limit_hit(tng_telemetry::Limit::MaxConcurrentStreams);
            }
        }
        req.extensions_mut().insert(tracker.clone());
        let body_timed_out = Arc::new(AtomicBool::new(false));
        let body_limit = limits.body_read_timeout;
        let req = req.map(|body| TimedBody::new(body, body_limit, body_timed_out.clone()));
        // Boxed: hyper keeps one service-future slot per connection for its whole life, and a
        // request writes the full (large) state machine into it; boxed, the memory is only
        // held while a request runs (~14 KiB less per idle keep-alive connection).
        let fut: Pin<Box<dyn Future<Output = Response<Body>> + Send>> =
            match check_head(&req, &limits) {
                Some(refused) => Box::pin(std::future::ready(refused)),
                None => Box::pin(handler(req)),
            };
        let metrics = metrics.clone();
        async move {
            let mut response = fut.await;
            if let Some(limit) = body_limit.filter(|_| body_timed_out.load(Ordering::SeqCst)) {
                if let Some(metrics) = &metrics {
                    metrics.limit_hit(tng_telemetry::Limit::BodyReadTimeout);
                }
                // Whatever the handler made of its broken body (a 502 from the aborted upstream
                // request, say), the client is the one that stalled.
                response = body_timeout_response(limit);
            }
            if response.status() == StatusCode::REQUEST_TIMEOUT {
                // Ours or relayed from upstream: the rest of the request body may still
                // arrive, so this connection cannot carry another request.
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                boxed(InFlightBody {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        }
    })
}

fn body_timeout_response(limit: Duration) -> Response<Body> {
    let err = TngError::new(
        StatusCode::REQUEST_TIMEOUT,
        "RequestBodyTimeout",
        BodyReadTimeout(limit).to_string(),
    );
    warn!("{err}; answered 408 and closing the connection");
    err.into_response()
}

/// Refuses a request head over `max_headers` fields or `max_header_bytes` (counted as its
/// HTTP/1.1 form: request line plus `name: value\r\n` lines). Hyper already refuses heads that
/// overflow its read buffer; this makes the limit exact and covers HTTP/2's field count.
fn check_head<B>(req: &Request<B>, limits: &Limits) -> Option<Response<Body>> {
    let count = req.headers().len();
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let bytes = req.method().as_str().len()
        + target
        + 12
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if count <= limits.max_headers && bytes <= limits.max_header_bytes {
        return None;
    }
    warn!(
        headers = count,
        bytes,
        max_headers = limits.max_headers,
        max_header_bytes = limits.max_header_bytes,
        "request head over the limits; answered 431"
    );
    Some(text_response(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request header fields too large\n",
    ))
}

/// Accepts connections until shutdown with default limits (the control interface).
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: Shutdown,
    name: String,
    on_connection: F,
) where
    F: Fn(TcpStream, SocketAddr, ConnGuard) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    accept_loop_limited(
        listener,
        shutdown,
        name,
        Arc::new(Limits::default()),
        None,
        on_connection,
    )
    .await
}

/// At most one "connection refused" log line per listener per this interval.
const OVERLOAD_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections until shutdown, handing each to `on_connection` in its own task, then
/// waits (bounded) for the connections to finish their in-flight requests. Beyond
/// `max_connections` open connections a new one is answered `503` and closed at once.
pub async fn accept_loop_limited<F, Fut>(
    listener: TcpListener,
    mut shutdown: Shutdown,
    name: String,
    limits: Arc<Limits>,
    metrics: Option<tng_telemetry::InstanceMetrics>,
    on_connection: F,
) where
    F: Fn(TcpStream, SocketAddr, ConnGuard) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refused = Arc::new(OverloadLog::default());
    loop {
        tokio::select! {
            _ = shutdown.requested() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        refused.note(&name, limits.max_connections);
                        if let Some(metrics) = &metrics {
                            metrics.limit_hit(tng_telemetry::Limit::MaxConnections);
                        }
                        tokio::spawn(refuse_overloaded(stream));
                        continue;
                    };
                    let guard = ConnGuard {
                        watcher: Some(graceful.watcher()),
                        limits: limits.clone(),
                        _permit: Some(permit),
                        peer: Some(peer),
                        metrics: metrics.clone(),
                    };
                    let span = tracing::info_span!("conn", listener = %name, %peer);
                    tokio::spawn(on_connection(stream, peer, guard).instrument(span));
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

/// Rate-limits the overload log line and counts what it did not print.
#[derive(Default)]
struct OverloadLog {
    last_logged: Mutex<Option<std::time::Instant>>,
    suppressed: AtomicU64,
}

impl OverloadLog {
    fn note(&self, listener: &str, max: usize) {
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < OVERLOAD_LOG_INTERVAL) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        warn!(
            listener,
            max_connections = max,
            refused_since_last_line = suppressed,
            "connection limit reached; answering 503 and closing new connections"
        );
    }
}

/// Answers 503 without reading the request, then reads (bounded) what the client already sent
/// before closing: closing with unread bytes would reset the connection and could destroy the
/// response before the client reads it.
async fn refuse_overloaded(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let response = close_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; retry later\n",
        );
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            drained += n;
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_headers: 3,
            max_header_bytes: 1024,
            ..Limits::default()
        }
    }

    #[test]
    fn heads_over_either_limit_are_refused_with_431() {
        let l = limits();
        let mut req = Request::get("/p").body(()).unwrap();
        req.headers_mut().insert("a", "1".parse().unwrap());
        req.headers_mut().insert("b", "2".parse().unwrap());
        req.headers_mut().insert("c", "3".parse().unwrap());
        assert!(check_head(&req, &l).is_none());
        req.headers_mut().insert("d", "4".parse().unwrap());
        let refused = check_head(&req, &l).expect("4 headers > 3");
        assert_eq!(
            refused.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        req.headers_mut().remove("d");
        req.headers_mut()
            .insert("c", "x".repeat(1000).parse().unwrap());
        assert!(check_head(&req, &l).is_some(), "over 1024 bytes");
    }
}
