//! Ingress `http_proxy`: an HTTP forward proxy (absolute-form requests and `CONNECT`).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tng_config::EndpointFilter;
use tracing::{debug, info, warn};

use super::filter::{should_tunnel, Host};
use crate::error::TngError;
use crate::http::body::{boxed, empty, Body};
use crate::http::body_timer::RequestBody;
use crate::http::client::HttpClient;
use crate::ingress::{pipeline, IngressContext};

pub struct HttpProxy {
    pub context: Arc<IngressContext>,
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
    pub async fn handle(self: Arc<Self>, req: Request<RequestBody>) -> Response<Body> {
        let Some((host, port)) = destination(&req) else {
            return TngError::new(
                StatusCode::BAD_REQUEST,
                "InvalidProxyRequest",
                "the request names no destination host",
            )
            .into_response();
        };
        let tunnel = should_tunnel(&self.filters, &Host::parse(&host), port);
        let authority = format!("{host}:{port}");
        debug!(%authority, tunnel, "proxy request");
        if req.method() == Method::CONNECT {
            return self.connect(req, authority, tunnel);
        }
        if tunnel {
            return pipeline::handle(self.context.clone(), authority, req).await;
        }
        self.forward_plain(req, &authority).await
    }

    /// Answers `CONNECT` and then either tunnels the HTTP spoken inside it or pipes it as is.
    fn connect(
        self: Arc<Self>,
        req: Request<RequestBody>,
        authority: String,
        tunnel: bool,
    ) -> Response<Body> {
        if let Some(tracker) = req.extensions().get::<crate::http::server::ConnTracker>() {
            tracker.upgraded();
        }
        tokio::spawn(async move {
            let upgraded = match hyper::upgrade::on(req).await {
                Ok(upgraded) => TokioIo::new(upgraded),
                Err(err) => return warn!("CONNECT upgrade failed: {err}"),
            };
            if tunnel {
                let context = self.context.clone();
                crate::http::server::serve_connection(upgraded, None, move |req| {
                    pipeline::handle(context.clone(), authority.clone(), req)
                })
                .await;
            } else {
                pipe(upgraded, &authority).await;
            }
        });
        Response::new(empty())
    }

    async fn forward_plain(&self, req: Request<RequestBody>, authority: &str) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        for name in ["proxy-connection", "proxy-authorization"] {
            parts.headers.remove(name);
        }
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
                    crate::ingress::describe_client_error(&err)
                ),
            )
            .into_response(),
        }
    }
}

/// Plain byte pipe to a destination that does not go through the tunnel.
pub async fn pipe<S>(mut client: S, authority: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some((host, port)) = authority
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    else {
        return;
    };
    match crate::http::client::connect(host, port, None).await {
        Ok(mut server) => {
            info!(%authority, "proxying connection in plaintext (no dst_filters match)");
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Err(err) => warn!(%authority, "cannot connect: {err}"),
    }
}
