//! Request routing on the egress: the first and last phases of every request.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use tng_ohttp::api::{OhttpApi, API_HEADER};
use tracing::{debug, Instrument};

use super::cors::CorsPolicy;
use super::{background_check, key_config, tunnel, OhttpEgress};
use crate::error::TngError;
use crate::http::body::{boxed, empty, Body};
use crate::http::body_timer::RequestBody;

const NON_TNG_MESSAGE: &str = "Access to this service requires a TNG-secured connection. Ensure your client connects via TNG. To bypass, update the direct_forward rules in the TNG server side configuration.";

/// Phase 1: classify the request and hand it to its API.
pub async fn route(
    context: &OhttpEgress,
    upstream: SocketAddr,
    source: Option<std::net::IpAddr>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let span = tracing::info_span!(
        target: tng_telemetry::LOG_CONTEXT_TARGET,
        "request",
        method = %req.method(),
        path = %req.uri().path()
    );
    async move {
        let origin = req.headers().get(header::ORIGIN).cloned();
        if CorsPolicy::is_preflight(&req) {
            let response = match &context.cors {
                Some(cors) => cors.preflight(&req),
                None => relay_preflight(context, upstream, req).await,
            };
            return response_filter(context, response, None, None);
        }
        let api = match parse_api(&req) {
            Ok(api) => api,
            Err(err) => {
                debug!("{err}");
                return response_filter(
                    context,
                    err.into_response(),
                    context.cors.as_ref(),
                    origin.as_ref(),
                );
            }
        };
        let mut response = match api {
            OhttpApi::KeyConfig => key_config::serve(context, req).await,
            OhttpApi::Tunnel => tunnel::serve(context, upstream, source, req).await,
            OhttpApi::BackgroundCheckChallenge => background_check::challenge(context).await,
            OhttpApi::BackgroundCheckVerify => background_check::verify(context, req).await,
        }
        .unwrap_or_else(|err| {
            err.log();
            err.into_response()
        });
        if api == OhttpApi::KeyConfig && context.cors.is_none() {
            // Browsers fetch the key config cross-origin; without an explicit CORS policy
            // upstream allows any origin for this (public) document.
            response.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        response_filter(context, response, context.cors.as_ref(), origin.as_ref())
    }
    .instrument(span)
    .await
}

fn parse_api<B>(req: &Request<B>) -> Result<OhttpApi, TngError> {
    // A gateway in between routing on another of several values would see a different API
    // than the one we serve: refuse the ambiguity.
    for name in [API_HEADER, header::CONTENT_TYPE.as_str()] {
        if req.headers().get_all(name).iter().nth(1).is_some() {
            return Err(TngError::new(
                StatusCode::BAD_REQUEST,
                "InvalidOhttpApiHeaderValue",
                format!("more than one {name} header"),
            ));
        }
    }
    let Some(value) = req.headers().get(API_HEADER) else {
        return Err(TngError::new(
            StatusCode::FORBIDDEN,
            "RejectNonTngRequest",
            NON_TNG_MESSAGE,
        ));
    };
    OhttpApi::parse(value.as_bytes()).ok_or_else(|| {
        TngError::new(
            StatusCode::BAD_REQUEST,
            "InvalidOhttpApiHeaderValue",
            format!(
                "invalid value of the {API_HEADER} header: {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )
    })
}

/// Last phase: headers every egress answer carries.
fn response_filter(
    context: &OhttpEgress,
    mut response: Response<Body>,
    cors: Option<&CorsPolicy>,
    origin: Option<&HeaderValue>,
) -> Response<Body> {
    if let Some(cors) = cors {
        cors.decorate(origin, &mut response);
    }
    match &context.server_header {
        Some(value) => response.headers_mut().insert(header::SERVER, value.clone()),
        None => response.headers_mut().remove(header::SERVER),
    };
    response
}

/// Without a CORS policy the service itself answers preflights, as it would without TNG.
async fn relay_preflight(
    context: &OhttpEgress,
    upstream: SocketAddr,
    req: Request<RequestBody>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(uri) = format!("http://{upstream}{path}").parse() else {
        return status_only(StatusCode::BAD_GATEWAY);
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    match context
        .backend
        .request(Request::from_parts(parts, boxed(body)))
        .await
    {
        Ok(response) => response.map(boxed),
        Err(err) => {
            tracing::warn!("CORS preflight relay to {upstream} failed: {err}");
            status_only(StatusCode::BAD_GATEWAY)
        }
    }
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}
