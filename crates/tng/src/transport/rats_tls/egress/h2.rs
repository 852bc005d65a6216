//! Multiplexed framing: an HTTP/2 server whose every `CONNECT` stream is one application
//! connection to the service. All streams of one TLS connection go to the same destination
//! (the one this connection was captured for); `:authority` is not looked at.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
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
    let service = hyper::service::service_fn(move |req| {
        let (dial, unit) = (dial.clone(), unit.clone());
        async move { Ok::<_, std::convert::Infallible>(stream(req, dial, unit()).await) }
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
