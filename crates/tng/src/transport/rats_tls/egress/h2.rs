//! Multiplexed framing: an HTTP/2 server whose every `CONNECT` stream is one application
//! connection to the service. All streams of one TLS connection go to the same destination
//! (the one this connection was captured for); `:authority` is not looked at.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::{debug, warn};

use crate::capture::direct_forward::Rewind;
use crate::http::body::{boxed, Body};
use tng_telemetry::{ConnGuard, Outcome};
use tracing::{Instrument, Span};

/// Makes the counted unit of each `CONNECT` stream (its span and access-log line included).
pub type NewUnit = Arc<dyn Fn() -> ConnGuard + Send + Sync>;

use crate::http::server::ConnGuard as ListenerGuard;
use crate::net::Metered;
use crate::shutdown::Shutdown;
use crate::transport::AppStream;
use crate::transport::Target;

/// Windows and frame size granted to the ingress, as on the ingress side.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
const MAX_FRAME: u32 = 256 * 1024;

/// The TLS stream the egress serves; concrete, so the connection future below is proven
/// `Send` here rather than through generic bounds further up.
pub type Tunnel = tokio_rustls::server::TlsStream<Rewind<Box<dyn AppStream>>>;

pub fn serve(
    tunnel: Tunnel,
    upstream: SocketAddr,
    so_mark: Option<u32>,
    limits: &tng_config::Limits,
    guard: ListenerGuard,
    mut shutdown: Shutdown,
    unit: NewUnit,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let target = Arc::new(Target::from(upstream));
    let service = hyper::service::service_fn(move |req| {
        let (target, unit) = (target.clone(), unit.clone());
        async move { Ok::<_, std::convert::Infallible>(stream(req, target, so_mark, unit()).await) }
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
        // Held until the connection ends, so shutdown waits (bounded) for its streams.
        let _guard = guard;
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
async fn stream(
    req: Request<Incoming>,
    target: Arc<Target>,
    so_mark: Option<u32>,
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
    let service = match crate::exit::connect(&target, so_mark).await {
        Ok(service) => service,
        Err(err) => {
            unit.failed_with(Outcome::UpstreamUnreachable);
            warn!(%target, "cannot connect to the service: {err}");
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
            debug!(%target, "stream ended: {err}");
        }
    };
    tokio::spawn(relay.instrument(span));
    Response::new(boxed(Empty::new()))
}
