//! `x-tng-ohttp-api: /tng/tunnel`: open an encapsulated request, forward it in plaintext to the
//! service, seal the service's response back into the tunnel.
//!
//! Phases: [`check_content_type`] → [`read_metadata`] → [`check_client_auth`] →
//! [`select_key`] → [`open_request`] → [`build_backend_request`] → [`forward`] →
//! [`seal_response`]; an [`Observation`] follows the request from `forward` to the end of the
//! response body. Every phase before `forward` can still answer with an error status;
//! once the service's response head is sealed, a later failure can only cut the body short
//! (no final chunk), which the ingress detects.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tng_ohttp::api::{CONTENT_TYPE_CHUNKED_REQUEST, CONTENT_TYPE_CHUNKED_RESPONSE};
use tng_ohttp::bhttp::{self, BhttpError, Event, RequestHead};
use tng_ohttp::chunked::{OhttpError, RequestHeader, ResponseEncoder, ServerRequest};
use tng_ohttp::keys::ServerKey;
use tng_ohttp::metadata::{self, Metadata, MetadataError, MetadataReader};
use tng_telemetry::Outcome;
use tracing::Instrument;

use super::freshness::Rejection;
use super::observation::Observation;
use super::OhttpEgress;
use crate::error::TngError;
use crate::http::body::{boxed, empty, full, Body};
use crate::http::body_timer::RequestBody;
use crate::http::headers::{content_length, declares_body, strip_connection_specific};
use crate::http::observed::{Counted, End, Finished};
use crate::transport::ohttp::body::reader::{
    plaintext_body, read_at_least, MessageReader, ReadError,
};
use crate::transport::ohttp::body::writer::sealed_body;

/// The default of `limits.max_metadata_bytes`. Metadata carries at most a client token and a
/// public key: a few KiB. Upstream accepts up to 32 MiB, which would let any peer make us
/// buffer that much per request.
pub const MAX_METADATA_LEN: usize = 1024 * 1024;

type Reader = MessageReader<RequestBody, ServerRequest>;
/// Why the decrypted request body failed, if it did, so the status can say so.
type FailureSlot = Arc<Mutex<Option<TngError>>>;

pub async fn serve(
    context: &OhttpEgress,
    upstream: SocketAddr,
    req: Request<RequestBody>,
) -> Result<Response<Body>, TngError> {
    check_content_type(req.headers())?;
    let (parts, mut body) = req.into_parts();
    let opened = async {
        let (metadata, rest) = read_metadata(context, &mut body).await?;
        let sender = check_client_auth(context, &metadata)?;
        let key = select_key(context, &metadata)?;
        open_request(context, &mut body, rest, &key, sender.as_ref()).await
    }
    .await;
    let (server_request, enc, rest) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            drain(&mut body).await;
            return Err(err);
        }
    };
    let encoder = server_request.response_encoder();
    let limits = bhttp::Limits {
        max_field_section: context.limits.max_header_bytes,
    };
    let mut reader =
        MessageReader::with_limits(body, server_request, &rest, limits).map_err(read_error)?;
    let head = match reader.next_event().await {
        Ok(Some(Event::RequestHead(head))) => head,
        Ok(Some(Event::ResponseHead(_))) => {
            return Err(TngError::new(
                StatusCode::BAD_REQUEST,
                "InvalidHttpRequest",
                "the decrypted message is a response, not a request",
            ))
        }
        Ok(_) => return Err(bhttp_error(ReadError::Truncated)),
        Err(ReadError::Bhttp(
            err
            @ (BhttpError::FieldSectionTooLarge { .. } | BhttpError::ControlDataTooLarge { .. }),
        )) => {
            tracing::warn!("inner request head refused with 431: {err}");
            return inner_refusal(context, encoder, header_too_large(&err.to_string()));
        }
        Err(err) => return Err(read_error(err)),
    };
    if head.headers.len() > context.limits.max_headers {
        let why = format!(
            "{} header fields, more than the limit of {}",
            head.headers.len(),
            context.limits.max_headers
        );
        tracing::warn!("inner request head refused with 431: {why}");
        return inner_refusal(context, encoder, header_too_large(&why));
    }
    if let Some(replay) = &context.replay {
        let date = head.headers.get(header::DATE).map(HeaderValue::as_bytes);
        let admitted = replay.admit(
            &enc,
            date,
            std::time::SystemTime::now(),
            std::time::Instant::now(),
        );
        if let Err(rejection) = admitted {
            return replay_refusal(context, encoder, replay.window(), rejection);
        }
    }
    tracing::debug!(method = %head.method, path = %head.path, "tunnel request opened");
    let observed = Observation::start(context, &head);
    let failure = FailureSlot::default();
    let backend_request = build_backend_request(
        context,
        upstream,
        &parts.headers,
        head,
        reader,
        failure.clone(),
    )
    .await?;
    let backend_request = backend_request.map(|body| {
        boxed(Counted::new(
            body,
            observed.bytes_in.clone(),
            Some(context.metrics.clone()),
        ))
    });
    let forwarded = forward(context, upstream, backend_request, &failure)
        .instrument(observed.span.clone())
        .await;
    match forwarded {
        Ok(response) => {
            let status = response.status().as_u16();
            let tx = Some(context.metrics.clone());
            let upstream = upstream.to_string();
            let response = response.map(|body| {
                Finished::new(body, tx, move |end, bytes_out| {
                    let outcome = match end {
                        End::Complete => Outcome::Ok,
                        End::Failed => Outcome::Error,
                        End::Abandoned => Outcome::ClientClosed,
                    };
                    observed.finish(Some(status), outcome, bytes_out, &upstream);
                })
            });
            seal_response(context, response, encoder)
        }
        Err(err) => {
            let outcome = match err.code {
                "ConnectUpstreamFailed" => Outcome::UpstreamUnreachable,
                "UpstreamResponseTimeout" => Outcome::Timeout,
                _ => Outcome::Error,
            };
            observed.finish(Some(err.status.as_u16()), outcome, 0, &upstream.to_string());
            Err(err)
        }
    }
}

/// A refusal the client must see as the answer to its request (it is not the gateway that
/// failed but the request that is unacceptable), sealed like a service response.
fn inner_refusal(
    context: &OhttpEgress,
    encoder: ResponseEncoder,
    response: Response<Body>,
) -> Result<Response<Body>, TngError> {
    seal_response(context, response, encoder)
}

fn header_too_large(why: &str) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "request header fields too large (inside the tunnel): {why}\n"
    )));
    *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// RFC 9458 §6.5: a request outside the window gets a 400 carrying our `Date` inside the
/// encapsulated response, so the client can see (and correct) the clock difference. An exact
/// replay is answered outside the tunnel: whoever replays cannot read a sealed answer, and the
/// original client never sees this response.
fn replay_refusal(
    context: &OhttpEgress,
    encoder: ResponseEncoder,
    window: std::time::Duration,
    rejection: Rejection,
) -> Result<Response<Body>, TngError> {
    context.metrics.replay_refused();
    match rejection {
        Rejection::Stale { date, now } => {
            let message = format!(
                "request Date {} is outside the replay window of {}s around the egress time {}\n",
                httpdate::fmt_http_date(date),
                window.as_secs(),
                httpdate::fmt_http_date(now),
            );
            tracing::warn!("tunnel request refused with 400: {}", message.trim_end());
            let mut response = Response::new(full(message));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                headers.insert(header::DATE, value);
            }
            seal_response(context, response, encoder)
        }
        Rejection::Replayed => Err(TngError::new(
            StatusCode::BAD_REQUEST,
            "ReplayedRequest",
            "an encapsulated request with this HPKE encapsulated key was already accepted; \
             replayed requests are refused",
        )),
        Rejection::Full => Err(TngError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ReplayCacheFull",
            format!(
                "too many requests within the replay window ({} remembered); retry later",
                super::freshness::MAX_REMEMBERED
            ),
        )),
    }
}

/// Reads (a bounded amount of) the rest of a refused request before answering. Closing a
/// connection with unread request bytes makes the kernel send a reset, and the client — still
/// uploading — may then lose our response (for a 422, the cue to refetch the key).
async fn drain(body: &mut RequestBody) {
    const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
    const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);
    let mut drained = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while drained < DRAIN_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

fn check_content_type(headers: &HeaderMap) -> Result<(), TngError> {
    // Exact byte comparison, as upstream does: parameters are not allowed.
    if headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)
        == Some(CONTENT_TYPE_CHUNKED_REQUEST.as_bytes())
    {
        return Ok(());
    }
    Err(TngError::new(
        StatusCode::BAD_REQUEST,
        "InvalidOHttpRequest",
        format!("Wrong content-type header: expected {CONTENT_TYPE_CHUNKED_REQUEST}"),
    ))
}

async fn read_metadata(
    context: &OhttpEgress,
    body: &mut RequestBody,
) -> Result<(Metadata, Bytes), TngError> {
    let mut reader = MetadataReader::new(context.limits.max_metadata_bytes);
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if let Some(done) = reader.push(&data).map_err(metadata_error)? {
                        return Ok(done);
                    }
                }
            }
            Some(Err(err)) => {
                return Err(TngError::new(
                    StatusCode::BAD_REQUEST,
                    "MetadataReadError",
                    format!("failed to read metadata: {err}"),
                ))
            }
            None => return Err(metadata_error(reader.finish())),
        }
    }
}

fn metadata_error(err: MetadataError) -> TngError {
    let (status, code) = match &err {
        MetadataError::TooLong { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "MetadataTooLong"),
        MetadataError::Read(_) => (StatusCode::BAD_REQUEST, "MetadataReadError"),
        MetadataError::Decode(_) => (StatusCode::BAD_REQUEST, "MetadataDecodeError"),
    };
    TngError::new(status, code, err.to_string())
}

/// Checks the client-auth part of the metadata against this egress's `verify`. Returns the
/// attested sender key when the request must be opened in HPKE Auth mode.
fn check_client_auth(
    context: &OhttpEgress,
    metadata: &Metadata,
) -> Result<Option<[u8; 32]>, TngError> {
    let invalid = |message: String| {
        TngError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MetadataValidateError",
            message,
        )
    };
    match (&metadata.client_auth, context.verifier.as_deref()) {
        (Some(metadata::ClientAuth::NoAuth(_)), None) => Ok(None),
        (Some(metadata::ClientAuth::NoAuth(_)), Some(_)) => Err(invalid(
            "client attestation is required but no attestation info was provided".into(),
        )),
        (Some(metadata::ClientAuth::AttestedPublicKey(_)), None) => Err(invalid(
            "client attestation is not required by this egress but attestation info was provided"
                .into(),
        )),
        (Some(metadata::ClientAuth::AttestedPublicKey(attested)), Some(verifier)) => {
            use base64::Engine as _;
            let pk_s: [u8; 32] = attested.pk_s.as_slice().try_into().map_err(|_| {
                invalid(format!(
                    "pk_s must be 32 bytes, got {}",
                    attested.pk_s.len()
                ))
            })?;
            let expected = tng_attest::claims::client_claims(
                None,
                &base64::engine::general_purpose::STANDARD.encode(pk_s),
            );
            verifier
                .verify(&attested.attestation_result, &expected)
                .map_err(|e| invalid(format!("client attestation failed: {e}")))?;
            Ok(Some(pk_s))
        }
        (None, _) => Err(invalid("client_auth is empty".into())),
    }
}

fn select_key(context: &OhttpEgress, metadata: &Metadata) -> Result<Arc<ServerKey>, TngError> {
    let hint = metadata.key_config_hint.as_ref().ok_or_else(|| {
        TngError::new(
            StatusCode::BAD_REQUEST,
            "ServerKeyConfigHintNotSpecified",
            "the request metadata names no server key",
        )
    })?;
    context.keys.find(&hint.public_key).ok_or_else(|| {
        TngError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ServerKeyConfigNotFound",
            format!(
                "no server key with public key {}; fetch the key config again",
                hex::encode(&hint.public_key)
            ),
        )
    })
}

/// Also returns the request's HPKE encapsulated key, which identifies it for replay checks.
async fn open_request(
    context: &OhttpEgress,
    body: &mut RequestBody,
    rest: Bytes,
    key: &ServerKey,
    sender: Option<&[u8; 32]>,
) -> Result<(ServerRequest, [u8; 32], Bytes), TngError> {
    let mut buf = BytesMut::from(&rest[..]);
    let complete = read_at_least(body, &mut buf, RequestHeader::LEN)
        .await
        .map_err(|e| ohttp_error(format!("cannot read the OHTTP header: {e}")))?;
    if !complete {
        return Err(ohttp_error("the body ends inside the OHTTP header".into()));
    }
    let header =
        RequestHeader::parse(&buf[..RequestHeader::LEN]).map_err(|e| ohttp_error(e.to_string()))?;
    let mut request = match sender {
        Some(pk_s) => ServerRequest::new_auth(key, &header, pk_s),
        None => ServerRequest::new(key, &header),
    }
    .map_err(|e| bhttp_error(ReadError::Ohttp(e)))?;
    request.set_max_chunk(context.limits.max_chunk_bytes);
    let rest = buf.split_off(RequestHeader::LEN).freeze();
    Ok((request, header.enc, rest))
}

fn ohttp_error(message: String) -> TngError {
    TngError::new(StatusCode::INTERNAL_SERVER_ERROR, "OhttpError", message)
}

/// A chunk over `max_chunk_bytes` is the client's fault (400); anything else keeps upstream's
/// code, see [`bhttp_error`].
fn read_error(err: ReadError) -> TngError {
    match err {
        ReadError::Ohttp(err @ OhttpError::ChunkTooLarge { .. }) => {
            TngError::new(StatusCode::BAD_REQUEST, "ChunkTooLarge", err.to_string())
        }
        err => bhttp_error(err),
    }
}

/// Upstream reports every failure inside the sealed stream as `BhttpError` (decryption happens
/// lazily inside its BHTTP reader); peers only log the code, so we keep it.
fn bhttp_error(err: ReadError) -> TngError {
    bhttp_error_ref(&err)
}

fn bhttp_error_ref(err: &ReadError) -> TngError {
    TngError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "BhttpError",
        err.to_string(),
    )
}

async fn build_backend_request(
    context: &OhttpEgress,
    upstream: SocketAddr,
    outer_headers: &HeaderMap,
    head: RequestHead,
    mut reader: Reader,
    failure: FailureSlot,
) -> Result<Request<Body>, TngError> {
    let RequestHead {
        method,
        authority,
        path,
        mut headers,
        ..
    } = head;
    let has_body = declares_body(&headers);
    strip_connection_specific(&mut headers);
    for (name, value) in outer_headers {
        if context.request_passthrough.allows(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(header::HOST) && !authority.is_empty() {
        if let Ok(host) = HeaderValue::from_str(&authority) {
            headers.insert(header::HOST, host);
        }
    }
    let declared_length = content_length(&headers);
    let body = if has_body {
        request_body(reader, None, declared_length, failure)
    } else {
        // No framing header: HTTP/2 clients may still send a body. Look at the next event,
        // which for a body-less request is already in the first chunk.
        match reader.next_event().await.map_err(bhttp_error)? {
            Some(Event::Data(first)) => request_body(reader, Some(first), declared_length, failure),
            _ => empty(),
        }
    };
    let path = if path.starts_with('/') {
        path
    } else {
        "/".to_string()
    };
    let uri = format!("http://{upstream}{path}")
        .parse::<http::Uri>()
        .map_err(|e| {
            TngError::new(
                StatusCode::BAD_REQUEST,
                "InvalidHttpRequest",
                format!("invalid request path: {e}"),
            )
        })?;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The decrypted request body, streamed to the service as it is opened.
fn request_body(
    reader: Reader,
    first: Option<Bytes>,
    content_length: Option<u64>,
    failure: FailureSlot,
) -> Body {
    plaintext_body(reader, content_length, first, move |err| {
        tracing::warn!("tunnel request body failed: {err}");
        if let Ok(mut slot) = failure.lock() {
            *slot = Some(match err {
                ReadError::Ohttp(OhttpError::ChunkTooLarge { len, max }) => TngError::new(
                    StatusCode::BAD_REQUEST,
                    "ChunkTooLarge",
                    OhttpError::ChunkTooLarge {
                        len: *len,
                        max: *max,
                    }
                    .to_string(),
                ),
                err => bhttp_error_ref(err),
            });
        }
    })
}

async fn forward(
    context: &OhttpEgress,
    upstream: SocketAddr,
    request: Request<Body>,
    failure: &FailureSlot,
) -> Result<Response<Incoming>, TngError> {
    let sent = context.backend.request(request);
    let result = match context.limits.response_timeout {
        Some(limit) => match tokio::time::timeout(limit, sent).await {
            Ok(result) => result,
            Err(_) => {
                return Err(TngError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "UpstreamResponseTimeout",
                    format!(
                        "the service at {upstream} sent no response within {}s (limits.response_timeout)",
                        limit.as_secs()
                    ),
                ))
            }
        },
        None => sent.await,
    };
    match result {
        Ok(response) => Ok(response),
        Err(err) => {
            if let Some(failed) = failure.lock().ok().and_then(|slot| slot.clone()) {
                return Err(failed);
            }
            let (code, what) = if err.is_connect() {
                ("ConnectUpstreamFailed", "cannot connect to the service")
            } else {
                (
                    "HttpPlainTextForwardError",
                    "forwarding to the service failed",
                )
            };
            let mut message = format!("{what} at {upstream}: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Err(TngError::new(StatusCode::BAD_GATEWAY, code, message))
        }
    }
}

fn seal_response<B>(
    context: &OhttpEgress,
    response: Response<B>,
    encoder: ResponseEncoder,
) -> Result<Response<Body>, TngError>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<crate::http::body::BoxError>,
{
    let (parts, body) = response.into_parts();
    let mut outer = Response::builder().status(StatusCode::OK);
    for (name, value) in &parts.headers {
        if context.response_passthrough.allows(name) {
            outer = outer.header(name, value);
        }
    }
    let mut headers = parts.headers;
    strip_connection_specific(&mut headers);
    let mut head = BytesMut::with_capacity(512);
    bhttp::encode_response_head(parts.status, &headers, &mut head).map_err(|e| {
        TngError::new(
            StatusCode::BAD_GATEWAY,
            "BhttpError",
            format!("cannot encode the service's response: {e}"),
        )
    })?;
    let lead = encoder.nonce();
    // The cut reaches the client as a truncated body; the log line says where it happened.
    let body = http_body_util::BodyExt::map_err(body, |err| {
        let err: crate::http::body::BoxError = err.into();
        tracing::warn!("response from the service broke off: {err}");
        err
    });
    let body = sealed_body(lead, head, body, encoder);
    outer
        .header(header::CONTENT_TYPE, CONTENT_TYPE_CHUNKED_RESPONSE)
        .body(body)
        .map_err(|e| {
            TngError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })
}
