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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown, Watcher};
use tng_config::Limits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use crate::http::body::{boxed, text_response, Body, BoxError};
use crate::shutdown::{Shutdown, DRAIN_TIMEOUT};

/// What a served connection carries from its listener: the graceful-shutdown watcher, the
/// listener's limits and its slot in `max_connections`.
pub struct ConnGuard {
    watcher: Option<Watcher>,
    limits: Arc<Limits>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl ConnGuard {
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
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
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let guard = guard.unwrap_or_else(nested_guard);
    let (io, tracker) = GuardedIo::new(io, guard.limits.clone());
    let builder = builder(&guard.limits);
    let conn = builder
        .serve_connection(
            TokioIo::new(io),
            service(handler, tracker, guard.limits.clone()),
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
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let (io, tracker) = GuardedIo::new(io, guard.limits.clone());
    let builder = builder(&guard.limits);
    let conn = builder
        .serve_connection_with_upgrades(
            TokioIo::new(io),
            service(handler, tracker, guard.limits.clone()),
        )
        .into_owned();
    run_watched(conn, guard).await;
}

fn nested_guard() -> ConnGuard {
    ConnGuard {
        watcher: None,
        limits: Arc::new(Limits::default()),
        _permit: None,
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
    let handler = Arc::new(handler);
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let in_flight = tracker.request_started();
        req.extensions_mut().insert(tracker.clone());
        // Boxed: hyper keeps one service-future slot per connection for its whole life, and a
        // request writes the full (large) state machine into it; boxed, the memory is only
        // held while a request runs (~14 KiB less per idle keep-alive connection).
        let fut: Pin<Box<dyn Future<Output = Response<Body>> + Send>> =
            match check_head(&req, &limits) {
                Some(refused) => Box::pin(std::future::ready(refused)),
                None => Box::pin(handler(req)),
            };
        async move {
            let response = fut.await;
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                boxed(InFlightBody {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        }
    })
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

/// Keeps the connection's request counted as in flight until hyper has sent (or dropped) the
/// whole response body.
struct InFlightBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Per-connection request accounting shared by the service and [`GuardedIo`].
#[derive(Clone)]
pub struct ConnTracker(Arc<Mutex<ConnState>>);

struct ConnState {
    in_flight: usize,
    served: u64,
    /// When the connection last became free of requests (its accept time at first).
    idle_since: Instant,
    /// First byte of a request head read while no request was in flight.
    head_started: Option<Instant>,
    /// Handed over to a tunnel (CONNECT): HTTP timers no longer apply.
    upgraded: bool,
    /// A read that is pending without a timer (requests were in flight): it must be polled
    /// again to arm the timer once the last request finishes.
    reader: Option<std::task::Waker>,
}

/// Decrements the in-flight count when dropped.
struct InFlight(ConnTracker);

impl Drop for InFlight {
    fn drop(&mut self) {
        let reader = self.0.update(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
                s.head_started = None;
                return s.reader.take();
            }
            None
        });
        if let Some(waker) = reader {
            waker.wake();
        }
    }
}

impl ConnTracker {
    fn new() -> Self {
        ConnTracker(Arc::new(Mutex::new(ConnState {
            in_flight: 0,
            served: 0,
            idle_since: Instant::now(),
            head_started: None,
            upgraded: false,
            reader: None,
        })))
    }

    fn update<T>(&self, f: impl FnOnce(&mut ConnState) -> T) -> T {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    fn request_started(&self) -> InFlight {
        self.update(|s| {
            s.in_flight += 1;
            s.served += 1;
            s.head_started = None;
        });
        InFlight(self.clone())
    }

    /// The connection now carries a tunnel (CONNECT): stop the request timers.
    pub fn upgraded(&self) {
        self.update(|s| s.upgraded = true);
    }

    fn bytes_read(&self) {
        self.update(|s| {
            if s.in_flight == 0 && s.head_started.is_none() {
                s.head_started = Some(Instant::now());
            }
        });
    }

    /// The next timer for a read pending now; without one, `waker` is kept so the read is
    /// polled again when the connection becomes idle.
    fn deadline(
        &self,
        limits: &Limits,
        proto: Proto,
        waker: &std::task::Waker,
    ) -> Option<(Instant, Expiry)> {
        self.update(|s| {
            if s.upgraded {
                return None;
            }
            if s.in_flight > 0 {
                s.reader = Some(waker.clone());
                return None;
            }
            let head = limits.header_read_timeout;
            Some(match (proto, s.served, s.head_started) {
                // HTTP/2 frames (pings, settings) are not request heads: only idleness counts.
                (Proto::H2, _, _) => (s.idle_since + limits.idle_timeout, Expiry::Idle),
                // The first head is due a fixed time after accept, however slowly it trickles.
                (_, 0, None) => (s.idle_since + head, Expiry::NoRequest),
                (_, 0, Some(_)) => (s.idle_since + head, Expiry::Head),
                (_, _, Some(started)) => (started + head, Expiry::Head),
                (_, _, None) => (s.idle_since + limits.idle_timeout, Expiry::Idle),
            })
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Unknown,
    H1,
    H2,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expiry {
    /// Connected but sent nothing within `header_read_timeout`.
    NoRequest,
    /// Started a request head but did not finish it within `header_read_timeout`.
    Head,
    /// No request for `idle_timeout`.
    Idle,
}

/// A complete `connection: close` HTTP/1.1 response written by hand, where hyper cannot answer.
fn close_response(status: StatusCode, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// The connection's transport, with the head-read and idle timers. Hyper polls reads whenever
/// it waits for a request (HTTP/1) or always (HTTP/2), so a timer armed on a pending read
/// covers exactly the time the connection waits on its client.
pub struct GuardedIo<I> {
    inner: I,
    tracker: ConnTracker,
    limits: Arc<Limits>,
    proto: Proto,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
    expired: Option<Expiry>,
}

impl<I> GuardedIo<I> {
    fn new(inner: I, limits: Arc<Limits>) -> (Self, ConnTracker) {
        let tracker = ConnTracker::new();
        let io = GuardedIo {
            inner,
            tracker: tracker.clone(),
            limits,
            proto: Proto::Unknown,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            armed: None,
            expired: None,
        };
        (io, tracker)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> GuardedIo<I> {
    fn expire(&mut self, expiry: Expiry, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired.is_none() {
            self.expired = Some(expiry);
            let limits = &self.limits;
            match expiry {
                Expiry::Head => {
                    if self.proto != Proto::H2 {
                        // Best effort: the socket buffer is empty while we wait for a head.
                        let response = close_response(
                            StatusCode::REQUEST_TIMEOUT,
                            "request head not received in time\n",
                        );
                        let _ = Pin::new(&mut self.inner).poll_write(cx, &response);
                        let _ = Pin::new(&mut self.inner).poll_flush(cx);
                    }
                    warn!(
                        timeout = ?limits.header_read_timeout,
                        "client did not complete its request head in time; answered 408 and closed the connection"
                    );
                }
                Expiry::NoRequest => info!(
                    timeout = ?limits.header_read_timeout,
                    "client sent no request in time; closed the connection"
                ),
                Expiry::Idle => info!(
                    timeout = ?limits.idle_timeout,
                    "idle keep-alive connection closed"
                ),
            }
        }
        match expiry {
            // A clean end of stream: hyper closes an idle connection without complaint.
            Expiry::Idle => Poll::Ready(Ok(())),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            ))),
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(expiry) = this.expired {
            return this.expire(expiry, cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    if this.proto == Proto::Unknown {
                        this.proto = if read.starts_with(b"PRI ") {
                            Proto::H2
                        } else {
                            Proto::H1
                        };
                    }
                    this.tracker.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let Some((deadline, expiry)) =
                    this.tracker.deadline(&this.limits, this.proto, cx.waker())
                else {
                    return Poll::Pending;
                };
                if this.armed != Some(deadline) {
                    this.armed = Some(deadline);
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => this.expire(expiry, cx),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for GuardedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
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
                        tokio::spawn(refuse_overloaded(stream));
                        continue;
                    };
                    let guard = ConnGuard {
                        watcher: Some(graceful.watcher()),
                        limits: limits.clone(),
                        _permit: Some(permit),
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

    fn waker() -> std::task::Waker {
        futures_util::task::noop_waker()
    }

    #[test]
    fn timers_follow_the_connection_state() {
        let (l, w) = (limits(), waker());
        let t = ConnTracker::new();
        let start = t.update(|s| s.idle_since);
        // Fresh connection: the first head is due header_read_timeout after accept, however
        // late its first byte comes.
        assert_eq!(
            t.deadline(&l, Proto::Unknown, &w),
            Some((start + l.header_read_timeout, Expiry::NoRequest))
        );
        t.bytes_read();
        assert_eq!(
            t.deadline(&l, Proto::H1, &w),
            Some((start + l.header_read_timeout, Expiry::Head))
        );
        // A request in flight: no timer, the reader is kept to be woken.
        let in_flight = t.request_started();
        assert_eq!(t.deadline(&l, Proto::H1, &w), None);
        assert!(t.update(|s| s.reader.is_some()));
        drop(in_flight);
        assert!(t.update(|s| s.reader.is_none()), "woken and dropped");
        let idle = t.update(|s| s.idle_since);
        assert_eq!(
            t.deadline(&l, Proto::H1, &w),
            Some((idle + l.idle_timeout, Expiry::Idle))
        );
        // The next head started: header timer from its first byte.
        t.bytes_read();
        let started = t.update(|s| s.head_started).expect("head started");
        assert_eq!(
            t.deadline(&l, Proto::H1, &w),
            Some((started + l.header_read_timeout, Expiry::Head))
        );
        // HTTP/2 frames are not heads: only idleness counts.
        assert_eq!(
            t.deadline(&l, Proto::H2, &w),
            Some((idle + l.idle_timeout, Expiry::Idle))
        );
        t.upgraded();
        assert_eq!(t.deadline(&l, Proto::H1, &w), None);
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
