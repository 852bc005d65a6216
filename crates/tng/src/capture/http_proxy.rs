//! Ingress `http_proxy`: an HTTP forward proxy (absolute-form requests and `CONNECT`).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tng_config::EndpointFilter;
use tracing::{debug, warn};

use super::filter::{should_tunnel, Host};
use crate::error::TngError;
use crate::http::body::{boxed, empty, Body};
use crate::http::body_timer::RequestBody;
use crate::http::client::HttpClient;
use crate::transport::{IngressTransport, Target};

pub struct HttpProxy {
    pub transport: Arc<IngressTransport>,
    /// Counts each CONNECT tunnel and each proxied plain request.
    pub metrics: tng_telemetry::InstanceMetrics,
    pub filters: Vec<EndpointFilter>,
    /// For destinations that do not match `dst_filters`.
    pub direct: HttpClient,
}

/// Where a proxied request is going: `CONNECT` names it in the request target, other methods
/// in the absolute URI or, failing that, the `Host` header.
fn destination<B>(req: &Request<B>) -> Option<(String, u16)> {
    let default_port = if req.uri().scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let authority = match req.uri().authority() {
        Some(a) => a.clone(),
        None => req
            .headers()
            .get(header::HOST)?
            .to_str()
            .ok()?
            .parse()
            .ok()?,
    };
    let port = authority.port_u16().unwrap_or(default_port);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some((host, port))
}

impl HttpProxy {
    /// Serves one request of a proxy client whose address is `client`.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<RequestBody>,
        client: Option<std::net::SocketAddr>,
    ) -> Response<Body> {
        // Addressed to this proxy: removed whichever way the request goes.
        crate::http::headers::strip_proxy_scoped(req.headers_mut());
        // One Host, valid, and the absolute-form target's authority wins over it (RFC 9112
        // §3.2.2): the destination chosen below and the Host the service sees are the same.
        if req.method() != Method::CONNECT {
            let http10 = req.version() == http::Version::HTTP_10;
            let authority = req.uri().authority().map(|a| a.as_str().to_string());
            match crate::http::rules::effective_host(req.headers(), authority.as_deref(), !http10) {
                Ok(Some(host)) => {
                    req.headers_mut().insert(header::HOST, host);
                }
                Ok(None) => {}
                Err(err) => {
                    warn!("proxy request refused: {err}");
                    return err.into_response();
                }
            }
        }
        let Some((host, port)) = destination(&req) else {
            return TngError::new(
                StatusCode::BAD_REQUEST,
                "InvalidProxyRequest",
                "the request names no destination host",
            )
            .into_response();
        };
        let tunnel = should_tunnel(&self.filters, &Host::parse(&host), port);
        let target = Target::new(host, port);
        debug!(%target, tunnel, "proxy request");
        if req.method() == Method::CONNECT {
            return self.connect(req, target, tunnel, client).await;
        }
        if tunnel {
            let _unit = self.metrics.connection();
            return self
                .transport
                .request(&target, client.map(|c| c.ip()), req)
                .await;
        }
        self.forward_plain(req, &target.to_string()).await
    }

    /// Answers `CONNECT` once the tunnel to the destination is open (so a client never sees
    /// a connected socket that is not protected yet), then carries the bytes inside it.
    async fn connect(
        self: Arc<Self>,
        req: Request<RequestBody>,
        target: Target,
        tunnel: bool,
        client: Option<std::net::SocketAddr>,
    ) -> Response<Body> {
        let mut unit = if tunnel {
            self.transport.unit(&self.metrics, client, &target)
        } else {
            self.metrics.connection()
        };
        let opened = if tunnel {
            match self.transport.open(&target).await {
                Ok(opened) => {
                    unit.set_attested(self.transport.verifies());
                    Some(opened)
                }
                Err(err) => {
                    unit.failed_with(err.outcome());
                    warn!(%target, "tunnel not opened: {err}");
                    return TngError::new(
                        StatusCode::BAD_GATEWAY,
                        "TunnelOpenFailed",
                        err.to_string(),
                    )
                    .into_response();
                }
            }
        } else {
            None
        };
        if let Some(tracker) = req.extensions().get::<crate::http::server::ConnTracker>() {
            tracker.upgraded();
        }
        tokio::spawn(async move {
            let upgraded = match hyper::upgrade::on(req).await {
                Ok(upgraded) => TokioIo::new(upgraded),
                Err(err) => return warn!("CONNECT upgrade failed: {err}"),
            };
            match opened {
                Some(opened) => {
                    opened
                        .serve(
                            crate::net::Metered::new(upgraded, unit),
                            Some(crate::http::server::ConnGuard::nested(client)),
                        )
                        .await
                }
                None => crate::exit::pipe(upgraded, bytes::Bytes::new(), target, None).await,
            }
        });
        Response::new(empty())
    }

    async fn forward_plain(&self, req: Request<RequestBody>, authority: &str) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        if parts.uri.authority().is_none() {
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            match format!("http://{authority}{path}").parse() {
                Ok(uri) => parts.uri = uri,
                Err(err) => {
                    return TngError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidProxyRequest",
                        err.to_string(),
                    )
                    .into_response()
                }
            }
        }
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(authority) {
                parts.headers.insert(header::HOST, host);
            }
        }
        parts.version = http::Version::HTTP_11;
        match self
            .direct
            .request(Request::from_parts(parts, boxed(body)))
            .await
        {
            Ok(response) => response.map(boxed),
            Err(err) => TngError::new(
                StatusCode::BAD_GATEWAY,
                "ProxyForwardError",
                format!(
                    "forwarding to {authority} failed: {}",
                    crate::http::client::describe_client_error(&err)
                ),
            )
            .into_response(),
        }
    }
}
