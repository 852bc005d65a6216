//! Connection timers: a request head must arrive within `header_read_timeout` (else 408 and
//! close), a keep-alive connection idle for `idle_timeout` is closed. They live in
//! [`GuardedIo`], which sees every read, and [`ConnTracker`], which the service updates as
//! requests start and finish — hyper's own header-read timer also fires on idle keep-alive
//! connections and closes without a status, and hyper-util's protocol sniffing has none.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::StatusCode;
use tng_config::Limits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::http::body::{Body, BoxError};

/// Keeps the connection's request counted as in flight until hyper has sent (or dropped) the
/// whole response body.
pub(crate) struct InFlightBody {
    pub(crate) inner: Body,
    pub(crate) _in_flight: InFlight,
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
pub(crate) struct InFlight(ConnTracker, usize);

impl InFlight {
    /// Requests in flight on the connection when this one started, itself included.
    pub(crate) fn concurrent(&self) -> usize {
        self.1
    }
}

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

    pub(crate) fn request_started(&self) -> InFlight {
        let concurrent = self.update(|s| {
            s.in_flight += 1;
            s.served += 1;
            s.head_started = None;
            s.in_flight
        });
        InFlight(self.clone(), concurrent)
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
pub(crate) fn close_response(status: StatusCode, body: &str) -> Vec<u8> {
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
    metrics: Option<tng_telemetry::InstanceMetrics>,
}

impl<I> GuardedIo<I> {
    pub(crate) fn new(
        inner: I,
        limits: Arc<Limits>,
        metrics: Option<tng_telemetry::InstanceMetrics>,
    ) -> (Self, ConnTracker) {
        let tracker = ConnTracker::new();
        let io = GuardedIo {
            inner,
            tracker: tracker.clone(),
            limits,
            proto: Proto::Unknown,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            armed: None,
            expired: None,
            metrics,
        };
        (io, tracker)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> GuardedIo<I> {
    fn expire(&mut self, expiry: Expiry, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired.is_none() {
            self.expired = Some(expiry);
            if let Some(metrics) = &self.metrics {
                metrics.limit_hit(match expiry {
                    Expiry::NoRequest | Expiry::Head => tng_telemetry::Limit::HeaderReadTimeout,
                    Expiry::Idle => tng_telemetry::Limit::IdleTimeout,
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
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
}
