//! Multiplexed framing: an HTTP/2 server whose every `CONNECT` stream is one application
//! connection to the service. All streams of one TLS connection go to the same destination
//! (the one this connection was captured for); `:authority` is not looked at.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::{debug, warn};

use crate::http::body::{boxed, Body};
use tng_telemetry::{ConnGuard, Outcome};
use tracing::{Instrument, Span};

/// Makes the counted unit of each `CONNECT` stream (its span and access-log line included).
pub type NewUnit = Arc<dyn Fn() -> ConnGuard + Send + Sync>;

use crate::net::Metered;
use crate::shutdown::Shutdown;
use crate::transport::AppStream;
use crate::transport::Target;

/// Windows and frame size granted to the ingress, as on the ingress side.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
const MAX_FRAME: u32 = 256 * 1024;

/// How each `CONNECT` stream reaches the service: a socket to the destination this
/// connection was captured for, in production. Displayed as that destination in logs.
pub trait Dial: fmt::Display + Send + Sync + 'static {
    type Stream: AppStream;
    fn dial(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send + 'static;
}

/// The service over TCP, as every egress entry reaches it.
pub struct ServiceDial {
    pub target: Target,
    pub so_mark: Option<u32>,
}

impl fmt::Display for ServiceDial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.target.fmt(f)
    }
}

impl Dial for ServiceDial {
    type Stream = tokio::net::TcpStream;
    fn dial(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send + 'static {
        crate::exit::connect(&self.target, self.so_mark)
    }
}

/// Serves the ingress's streams on one HTTP/2 connection until it ends. `hold` (the
/// listener's guard) is kept until then, so shutdown waits (bounded) for the streams. Generic
/// over the connection's IO so the fuzz target can drive it with bytes an ingress could send;
/// the returned future is boxed, so its `Send` is proven here, not in generic callers.
pub fn serve<T, D>(
    tunnel: T,
    dial: D,
    limits: &tng_config::Limits,
    hold: impl Send + 'static,
    mut shutdown: Shutdown,
    unit: NewUnit,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    T: AppStream,
    D: Dial,
{
    let dial = Arc::new(dial);
    let open = Arc::new(AtomicUsize::new(0));
    let limit = limits.max_concurrent_streams as usize;
    let service = hyper::service::service_fn(move |req| {
        let (dial, unit) = (dial.clone(), unit());
        let slot = Slot::take(&open);
        // h2 refuses streams beyond the advertised limit itself (`REFUSED_STREAM`, invisible
        // here); what is seen is a stream taking the connection's last slot.
        if slot.concurrent >= limit {
            unit.metrics()
                .limit_hit(tng_telemetry::Limit::MaxConcurrentStreams);
        }
        async move { Ok::<_, std::convert::Infallible>(stream(req, dial, unit, slot).await) }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .serve_connection(TokioIo::new(tunnel), service);
    Box::pin(async move {
        let _hold = hold;
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = shutdown.requested() => {
                // GOAWAY: no new streams; the open ones finish (within the drain period).
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = result {
            debug!("multiplexed connection ended: {err}");
        }
    })
}

/// One stream: `CONNECT` becomes a connection to the service, answered `200` once it is
/// open (`502` if the service cannot be reached); any other method gets upstream's `400`.
async fn stream<D: Dial>(
    req: Request<Incoming>,
    dial: Arc<D>,
    mut unit: ConnGuard,
    slot: Slot,
) -> Response<Body> {
    if req.method() != Method::CONNECT {
        let mut response = Response::new(boxed(Full::new(Bytes::from_static(
            super::super::NOT_CONNECT.as_bytes(),
        ))));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return response;
    }
    let service = match dial.dial().await {
        Ok(service) => service,
        Err(err) => {
            unit.failed_with(Outcome::UpstreamUnreachable);
            warn!(target = %dial, "cannot connect to the service: {err}");
            let mut response = Response::new(boxed(Empty::new()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let span = unit.span().cloned().unwrap_or_else(Span::current);
    let relay = async move {
        // The stream holds its slot until the relay ends.
        let _slot = slot;
        let mut tunnel = match hyper::upgrade::on(req).await {
            Ok(upgraded) => Metered::new(TokioIo::new(upgraded), unit),
            Err(err) => return debug!("CONNECT stream not upgraded: {err}"),
        };
        let mut service = service;
        let size = super::super::COPY_BUFFER;
        if let Err(err) =
            tokio::io::copy_bidirectional_with_sizes(&mut tunnel, &mut service, size, size).await
        {
            debug!(target = %dial, "stream ended: {err}");
        }
    };
    tokio::spawn(relay.instrument(span));
    Response::new(boxed(Empty::new()))
}

/// One open stream of a connection, counted until dropped.
struct Slot {
    open: Arc<AtomicUsize>,
    /// Streams open when this one started, itself included.
    concurrent: usize,
}

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        Slot {
            concurrent: open.fetch_add(1, Ordering::AcqRel) + 1,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use tng_telemetry::{Endpoints, InstanceLabels, Telemetry, Transport};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::transport::rats_tls::ingress::h2 as ingress;

    /// A service that holds each stream open until the client closes it.
    struct Hold;

    impl fmt::Display for Hold {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("held service")
        }
    }

    impl Dial for Hold {
        type Stream = tokio::io::DuplexStream;
        fn dial(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send + 'static {
            let (ours, mut service) = tokio::io::duplex(1024);
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = service.read_to_end(&mut sink).await;
            });
            std::future::ready(Ok(ours))
        }
    }

    #[tokio::test]
    async fn a_stream_taking_the_last_slot_counts_as_a_limit_hit() {
        let telemetry = Telemetry::new(&Default::default(), &Default::default(), "test").unwrap();
        let metrics = telemetry.egress(
            0,
            InstanceLabels {
                mode: "mapping".into(),
                transport: Transport::RatsTls,
                endpoints: Endpoints::ListenPort(1),
            },
        );
        let limits = tng_config::Limits {
            max_concurrent_streams: 2,
            ..Default::default()
        };
        let (client, server) = tokio::io::duplex(1 << 16);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let unit: NewUnit = Arc::new(move || metrics.stream(&"test", "held".into(), false));
        tokio::spawn(serve(server, Hold, &limits, (), shutdown, unit));
        let (mut send, conn) = ingress::handshake(client).await.unwrap();
        tokio::spawn(conn);
        let hits = || {
            telemetry
                .prometheus_text()
                .lines()
                .find(|l| {
                    l.starts_with("tng_limit_hits_total{")
                        && l.contains("limit=\"max_concurrent_streams\"")
                })
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
        };
        let first = ingress::open_stream(&mut send).await.unwrap();
        assert_eq!(hits().as_deref(), Some("0"));
        let second = ingress::open_stream(&mut send).await.unwrap();
        assert_eq!(
            hits().as_deref(),
            Some("1"),
            "the second stream took the last slot"
        );
        // A stream that ends frees its slot: the next one is again the second of two.
        let mut first = hyper_util::rt::TokioIo::new(first);
        first.shutdown().await.unwrap();
        let mut rest = Vec::new();
        first.read_to_end(&mut rest).await.unwrap();
        drop(first);
        // The relay returns right after its last write; let its task finish.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let third = ingress::open_stream(&mut send).await.unwrap();
        assert_eq!(hits().as_deref(), Some("2"));
        drop((second, third));
    }
}
