//! One local request through the ingress, as named phases:
//!
//! 1. [`request_filter`] — refuse what OHTTP cannot carry (upgrades, CONNECT).
//! 2. [`upstream_peer`] — the egress base URL: endpoint authority + rewritten path.
//! 3. [`encode_head`] — the inner request head as BHTTP.
//! 4. [`send`] — seal to the egress key and POST; on 422 refetch the key and send again once;
//!    an idempotent request whose connection closed before any answer is also sent again once.
//! 5. [`response_filter`] — open the sealed response and rebuild the local response.
//! 6. [`logging`] — when the response body ends: request metrics and the access-log line.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use tng_ohttp::api::{
    ErrorBody, OhttpApi, API_HEADER, CLIENT_IP_HEADER, CONTENT_TYPE_CHUNKED_REQUEST,
    CONTENT_TYPE_CHUNKED_RESPONSE,
};
use tng_ohttp::bhttp::{self, Event, RequestHead};
use tng_ohttp::chunked::{ClientRequest, ResponseDecoder};
use tng_ohttp::metadata::{self, AttestedPublicKey, Metadata, NoAuth, ServerKeyConfigHint};

use tng_telemetry::{AccessRecord, Outcome};
use tracing::{debug, info, warn, Instrument, Span};

use super::key_cache::USER_AGENT;
use super::replay::{self, AttemptBody, REPLAY_LIMIT};
use super::OhttpIngress;
use crate::error::TngError;
use crate::http::body::{boxed, read_small, Body};
use crate::http::body_timer::RequestBody;
use crate::http::client::{describe_client_error, is_timeout};
use crate::http::headers::{
    content_length, is_upgrade, strip_connection_specific, strip_proxy_scoped,
};
use crate::http::observed::{Counted, End, Finished};
use crate::http::rules::{check_target, effective_host};
use crate::transport::ohttp::body::reader::{plaintext_body, MessageReader, ReadError};
use crate::transport::ohttp::body::writer::sealed_body;

/// `client` is the application's address, when its capture mode knows it.
pub async fn handle(
    context: Arc<OhttpIngress>,
    authority: String,
    client: Option<std::net::IpAddr>,
    mut req: Request<RequestBody>,
) -> Response<Body> {
    let span = context
        .metrics
        .request_span(req.method().as_str(), req.uri().path());
    // A client that traces its own requests is the parent of ours.
    tng_telemetry::set_parent_from(&span, req.headers());
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let mut base_url = None;
    let response = async {
        let result = async {
            // Addressed to the proxy the application may think it talks to: never sealed,
            // never copied to the outer request.
            strip_proxy_scoped(req.headers_mut());
            let host = request_filter(&req)?;
            let base = base_url.insert(upstream_peer(&context, &authority, &req));
            let (parts, body) = req.into_parts();
            let host = host.or_else(|| HeaderValue::from_str(&authority).ok());
            let client = client.filter(|_| context.send_client_ip);
            let head = encode_head(&parts, host, client, SystemTime::now(), &Span::current());
            let body = Counted::new(body, bytes_in.clone(), None);
            let outer = send(&context, base, &parts, head, body).await?;
            response_filter(&context, outer).await
        }
        .await;
        result.unwrap_or_else(|err| {
            warn!("{err}");
            err.into_response()
        })
    }
    .instrument(span.clone())
    .await;
    logging(
        context, span, started, method, path, base_url, bytes_in, response,
    )
}

/// Last phase: once the response body has ended, the request is counted and gets its access
/// log line (the body's end, not the head, is when the client has its answer).
#[allow(clippy::too_many_arguments)]
fn logging(
    context: Arc<OhttpIngress>,
    span: Span,
    started: Instant,
    method: http::Method,
    path: String,
    upstream: Option<String>,
    bytes_in: Arc<AtomicU64>,
    response: Response<Body>,
) -> Response<Body> {
    let status = response.status().as_u16();
    let failed_here = response
        .headers()
        .get(header::SERVER)
        .is_some_and(|s| s.as_bytes() == crate::http::SERVER_HEADER.as_bytes());
    let declared = content_length(response.headers());
    response.map(move |body| {
        let observed = Finished::new(body, None, move |end, bytes_out| {
            let metrics = &context.metrics;
            let duration = started.elapsed();
            metrics.request_done(Some(status), duration);
            let outcome = match end {
                End::Abandoned => Outcome::ClientClosed,
                End::Failed => Outcome::Error,
                End::Complete if failed_here && status == 504 => Outcome::Timeout,
                End::Complete if failed_here && status >= 500 => Outcome::UpstreamUnreachable,
                End::Complete if failed_here && status >= 400 => Outcome::Refused,
                End::Complete => Outcome::Ok,
            };
            AccessRecord {
                method: Some(method.as_str()),
                path: Some(&path),
                status: Some(status),
                bytes_in: bytes_in.load(Relaxed),
                bytes_out,
                duration,
                upstream: upstream.as_deref().unwrap_or(""),
                outcome,
                attested: context.keys.verifies(),
            }
            .emit(metrics, &span);
        });
        boxed(observed.declared_length(declared))
    })
}

/// Refuses what OHTTP cannot carry (upgrades, CONNECT) and what is malformed (Host, target;
/// hyper has already enforced the framing rules). Returns the `Host` to seal.
fn request_filter<B>(req: &Request<B>) -> Result<Option<HeaderValue>, TngError> {
    if is_upgrade(req) {
        return Err(TngError::new(
            StatusCode::NOT_IMPLEMENTED,
            "UpgradeNotSupported",
            "protocol upgrades (WebSocket, CONNECT) cannot be carried over OHTTP",
        ));
    }
    check_target(req.method(), inner_target(req.uri()))?;
    // HTTP/1.0 may omit Host; HTTP/2 and absolute-form carry the authority in the target.
    let required = req.version() == http::Version::HTTP_11;
    effective_host(
        req.headers(),
        req.uri().authority().map(|a| a.as_str()),
        required,
    )
}

/// Origin-form path and query, or `*` (asterisk-form).
fn inner_target(uri: &http::Uri) -> &str {
    match uri.path_and_query() {
        Some(p) if p.as_str() == "*" => "*",
        Some(p) if p.as_str().starts_with('/') => p.as_str(),
        Some(p) if p.as_str().is_empty() => "/",
        Some(p) => p.as_str(),
        // Absolute form without a path: RFC 9112 §3.2.1, the path is "/".
        None => "/",
    }
}

fn upstream_peer<B>(context: &OhttpIngress, authority: &str, req: &Request<B>) -> String {
    // Only the path takes part: the query string travels inside the sealed request.
    let outer_path = context.rewriter.rewrite(req.uri().path());
    format!("{}://{authority}{outer_path}", context.scheme)
}

/// Mirrors what upstream's ingress sends: empty scheme and authority, origin-form path with
/// query (or `*`), and always a `host` header (the target's authority when the request came in
/// absolute form or over HTTP/2, else the client's `Host`, else the destination).
///
/// Unlike upstream it seals a valid `Date` on every request: the client's when it parses,
/// else our clock. The egress refuses replays of old requests by it (RFC 9458 §6.5), so a
/// request without one (or with one the egress cannot read, or one that `Connection: date`
/// strips) must not exist.
fn encode_head(
    parts: &http::request::Parts,
    host: Option<HeaderValue>,
    client: Option<std::net::IpAddr>,
    now: SystemTime,
    span: &Span,
) -> BytesMut {
    let mut headers = parts.headers.clone();
    strip_connection_specific(&mut headers);
    // Ours to write: an application must not be able to claim another address.
    headers.remove(CLIENT_IP_HEADER);
    if let Some(client) = client {
        if let Ok(value) = HeaderValue::from_str(&client.to_canonical().to_string()) {
            headers.insert(CLIENT_IP_HEADER, value);
        }
    }
    // The trace continues at the egress; the context travels sealed, so the outer leg never
    // sees it (and a client's own `traceparent` is replaced by our span, its child).
    if let Some(traceparent) = tng_telemetry::inject(span) {
        headers.insert(tng_telemetry::TRACEPARENT, traceparent);
    }
    let client_date = headers
        .get(header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok());
    if client_date.is_none() || headers.get_all(header::DATE).iter().count() > 1 {
        if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
            headers.insert(header::DATE, date);
        }
    }
    if let Some(host) = host {
        headers.insert(header::HOST, host);
    }
    let head = RequestHead {
        method: parts.method.clone(),
        scheme: String::new(),
        authority: String::new(),
        path: inner_target(&parts.uri).to_string(),
        headers,
    };
    let mut out = BytesMut::with_capacity(512);
    bhttp::encode_request_head(&head, &mut out);
    out
}

struct SentRequest {
    response: Response<Incoming>,
    decoder: ResponseDecoder,
}

async fn send(
    context: &OhttpIngress,
    base_url: &str,
    inner: &http::request::Parts,
    head: BytesMut,
    body: Counted<RequestBody>,
) -> Result<SentRequest, TngError> {
    let server = context.keys.server(base_url);
    let (live, recorder) = replay::record(body);
    let mut body = AttemptBody::Live(live);
    // Each reason to send again is used at most once per request.
    let mut key_refetched = false;
    // RFC 9110 §9.2.2: an idempotent request may be retried automatically after the
    // connection failed before its response. This is what saves requests written onto a
    // pooled connection that the peer (an nginx reload, a keep-alive timeout) closed at
    // that moment; other methods get the 502, since the request may have been processed.
    let mut may_resend_after_close = inner.method.is_idempotent();
    loop {
        let cached = context.keys.key(&server).await?;
        let key = &cached.config;
        let (sealed, client_auth) = match &cached.client {
            None => (
                ClientRequest::new(key),
                metadata::ClientAuth::NoAuth(NoAuth {}),
            ),
            // HPKE Auth mode: the egress checks the request came from the attested key.
            Some(identity) => (
                ClientRequest::new_auth_with_key(key, &identity.key),
                metadata::ClientAuth::AttestedPublicKey(AttestedPublicKey {
                    attestation_result: identity.token.clone(),
                    pk_s: identity.key.public_key().to_vec(),
                    as_provider: "coco".into(),
                }),
            ),
        };
        let sealer = sealed.map_err(|e| {
            TngError::new(
                StatusCode::BAD_GATEWAY,
                "ClientEncapsulateFailed",
                format!("cannot seal to the egress key: {e}"),
            )
        })?;
        let mut decoder = sealer.response_decoder();
        decoder.set_max_chunk(context.limits.max_chunk_bytes);
        let mut lead = BytesMut::new();
        lead.extend_from_slice(&metadata::encode_frame(&Metadata {
            client_auth: Some(client_auth),
            key_config_hint: Some(ServerKeyConfigHint {
                public_key: key.public_key.to_vec(),
            }),
        }));
        lead.extend_from_slice(&sealer.header());
        let mut request = Request::post(base_url)
            .header(API_HEADER, OhttpApi::Tunnel.as_str())
            .header(header::CONTENT_TYPE, CONTENT_TYPE_CHUNKED_REQUEST)
            .header(header::USER_AGENT, USER_AGENT);
        for (name, value) in &inner.headers {
            if context.request_passthrough.allows(name) {
                request = request.header(name, value);
            }
        }
        let outer_body = sealed_body(lead.freeze(), head.clone(), body, sealer);
        let request = request.body(outer_body).map_err(|e| {
            TngError::new(
                StatusCode::BAD_GATEWAY,
                "InvalidOuterRequest",
                e.to_string(),
            )
        })?;
        let sent = context.client.request(request);
        let result = match context.limits.response_timeout {
            Some(limit) => tokio::time::timeout(limit, sent).await.map_err(|_| {
                context.metrics.limit_hit(tng_telemetry::Limit::ResponseTimeout);
                TngError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "EgressResponseTimeout",
                    format!(
                        "the egress at {base_url} sent no response within {}s (limits.response_timeout)",
                        limit.as_secs()
                    ),
                )
            })?,
            None => sent.await,
        };
        let response = match result {
            Ok(response) => response,
            Err(err) if may_resend_after_close && closed_before_response(&err) => {
                may_resend_after_close = false;
                let Ok(replayed) = recorder.replay().await else {
                    return Err(forward_error(base_url, &err));
                };
                info!(
                    "the connection to the egress closed before it answered ({}); sending the {} request again",
                    describe_client_error(&err),
                    inner.method
                );
                body = AttemptBody::Replay(replayed);
                continue;
            }
            Err(err) => return Err(forward_error(base_url, &err)),
        };
        let status = response.status();
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            context.keys.invalidate(&server, key);
            if key_refetched {
                return Err(egress_refused(status, response).await);
            }
            key_refetched = true;
            context.metrics.key_retry();
            debug!(
                "egress no longer accepts key {}; refetching and replaying",
                hex::encode(key.public_key)
            );
            match recorder.replay().await {
                Ok(replayed) => {
                    body = AttemptBody::Replay(replayed);
                    continue;
                }
                Err(_) => {
                    return Err(TngError::new(
                        StatusCode::BAD_GATEWAY,
                        "ServerKeyChanged",
                        format!(
                            "the egress rotated its key while this request was in flight and the request body \
                             (over {REPLAY_LIMIT} bytes) cannot be replayed; retry the request"
                        ),
                    ))
                }
            }
        }
        if !status.is_success() {
            return Err(egress_refused(status, response).await);
        }
        return Ok(SentRequest { response, decoder });
    }
}

fn forward_error(base_url: &str, err: &hyper_util::client::legacy::Error) -> TngError {
    let status = if is_timeout(err) {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    TngError::new(
        status,
        "HttpCipherTextForwardError",
        format!(
            "sending the request to the egress at {base_url} failed: {}",
            describe_client_error(err)
        ),
    )
}

/// Whether the connection ended before the response head arrived, with no connect or timeout
/// failure: the peer closed or reset it while (or before) the request was being written.
fn closed_before_response(err: &hyper_util::client::legacy::Error) -> bool {
    if err.is_connect() {
        return false;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
            if hyper_err.is_incomplete_message() {
                return true;
            }
        }
        if let Some(io_err) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io_err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

async fn egress_refused(status: StatusCode, response: Response<Incoming>) -> TngError {
    let body = read_small(response.into_body(), 16 * 1024).await;
    // Only the egress's error code reaches the application: the rest of an outer-leg body
    // is not ours to relay (another egress may name its internal addresses there, a gateway in
    // between may answer with a page of its own). The log has all of it.
    let (code, detail) = match &body {
        Ok(bytes) => (
            serde_json::from_slice::<ErrorBody>(bytes)
                .ok()
                .map(|e| e.code)
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric())),
            String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned(),
        ),
        Err(err) => (None, format!("(unreadable body: {err})")),
    };
    // A timeout behind the egress is still a timeout for the client, and so is the egress
    // giving up on a request body that stopped arriving (the client's, most likely, whose own
    // `body_read_timeout` here races the egress's); anything else the egress refused is a bad
    // gateway from the client's point of view.
    let relayed = match status {
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => status,
        _ => StatusCode::BAD_GATEWAY,
    };
    let message = match code {
        Some(code) => format!("the egress answered {status} ({code})"),
        None => format!("the egress answered {status}"),
    };
    TngError::new(relayed, "HttpCipherTextBadResponse", message)
        .with_detail(format!("egress body: {detail}"))
}

async fn response_filter(
    context: &OhttpIngress,
    sent: SentRequest,
) -> Result<Response<Body>, TngError> {
    let SentRequest { response, decoder } = sent;
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes());
    if content_type != Some(CONTENT_TYPE_CHUNKED_RESPONSE.as_bytes()) {
        return Err(TngError::new(
            StatusCode::BAD_GATEWAY,
            "InvalidOHttpResponse",
            format!("the egress answered with content-type {content_type:?}, expected {CONTENT_TYPE_CHUNKED_RESPONSE}"),
        ));
    }
    let (outer, body) = response.into_parts();
    let limits = bhttp::Limits {
        max_field_section: context.limits.max_header_bytes,
    };
    let mut reader = MessageReader::with_limits(body, decoder, &[], limits).map_err(open_error)?;
    let head = match reader.next_event().await.map_err(open_error)? {
        Some(Event::ResponseHead(head)) => head,
        Some(Event::RequestHead(_)) => {
            return Err(TngError::new(
                StatusCode::BAD_GATEWAY,
                "InvalidHttpResponse",
                "the egress sent a request where a response was expected",
            ))
        }
        _ => return Err(open_error(ReadError::Truncated)),
    };
    if head.headers.len() > context.limits.max_headers {
        return Err(TngError::new(
            StatusCode::BAD_GATEWAY,
            "InvalidHttpResponse",
            format!(
                "the response has {} header fields, more than limits.max_headers ({})",
                head.headers.len(),
                context.limits.max_headers
            ),
        ));
    }
    let mut headers = head.headers;
    strip_connection_specific(&mut headers);
    for (name, value) in &outer.headers {
        if context.response_passthrough.allows(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    let declared_length = content_length(&headers);
    let mut response = Response::new(response_body(reader, declared_length));
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn open_error(err: ReadError) -> TngError {
    TngError::new(
        StatusCode::BAD_GATEWAY,
        "OhttpError",
        format!("cannot open the egress response: {err}"),
    )
}

/// The unsealed response body. An error cuts the local response short, which is what the
/// application must see when the tunnel breaks mid-body.
fn response_body(
    reader: MessageReader<Incoming, ResponseDecoder>,
    content_length: Option<u64>,
) -> Body {
    plaintext_body(reader, content_length, false, None, |err| {
        warn!("response from the egress broke off: {err}")
    })
}
