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
use tng_telemetry::{Limit, Outcome};
use tracing::Instrument;

use super::freshness::{Rejection, Source};
use super::observation::Observation;
use super::OhttpEgress;
use crate::error::TngError;
use crate::http::body::{boxed, empty, full, Body};
use crate::http::body_timer::RequestBody;
use crate::http::headers::strip_connection_specific;
use crate::http::observed::{Counted, End, Finished};
use crate::http::rules;
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
    source: Source,
    req: Request<RequestBody>,
) -> Result<Response<Body>, TngError> {
    check_content_type(req.headers())?;
    let (parts, mut body) = req.into_parts();
    let opened = async {
        let (metadata, rest) = read_metadata(context, &mut body).await?;
        let sender = check_client_auth(context, &metadata)?;
        let key = select_key(context, &metadata)?;
        let opened = open_request(context, &mut body, rest, &key, sender.as_ref()).await?;
        Ok::<_, TngError>((opened, sender.is_some()))
    }
    .await;
    let ((server_request, enc, rest), attested) = match opened {
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
            context.metrics.limit_hit(Limit::MaxHeaderBytes);
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
        context.metrics.limit_hit(Limit::MaxHeaders);
        return inner_refusal(context, encoder, header_too_large(&why));
    }
    if let Some(replay) = &context.replay {
        let date = head.headers.get(header::DATE).map(HeaderValue::as_bytes);
        let admitted = replay.admit_from(
            source,
            &enc,
            date,
            std::time::SystemTime::now(),
            std::time::Instant::now(),
        );
        if let Err(rejection) = admitted {
            return replay_refusal(context, encoder, replay, rejection);
        }
    }
    tracing::debug!(method = %head.method, path = %head.path, "tunnel request opened");
    let observed = Observation::start(context, &head);
    let failure = FailureSlot::default();
    let built = build_backend_request(
        context,
        upstream,
        &parts.headers,
        Client { source, attested },
        head,
        reader,
        failure.clone(),
    )
    .await;
    let upstream_name = upstream.to_string();
    let backend_request = match built {
        Ok(request) => request.map(|body| {
            boxed(Counted::new(
                body,
                observed.bytes_in.clone(),
                Some(context.metrics.clone()),
            ))
        }),
        Err(NotForwarded::Inner(err)) => {
            tracing::warn!("tunnel request refused inside the tunnel: {err}");
            observed.finish(
                Some(err.status.as_u16()),
                Outcome::Refused,
                0,
                &upstream_name,
            );
            return inner_refusal(context, encoder, err.into_response());
        }
        Err(NotForwarded::Outer(err)) => {
            observed.finish(Some(err.status.as_u16()), Outcome::Error, 0, &upstream_name);
            return Err(err);
        }
    };
    let forwarded = forward(context, upstream, backend_request, &failure)
        .instrument(observed.span.clone())
        .await;
    match forwarded {
        Ok(response) => {
            let status = response.status().as_u16();
            let tx = Some(context.metrics.clone());
            let response = response.map(|body| {
                Finished::new(body, tx, move |end, bytes_out| {
                    let outcome = match end {
                        End::Complete => Outcome::Ok,
                        End::Failed => Outcome::Error,
                        End::Abandoned => Outcome::ClientClosed,
                    };
                    observed.finish(Some(status), outcome, bytes_out, &upstream_name);
                })
            });
            seal_response(context, response, encoder)
        }
        // The client's framing was wrong, not the tunnel: it reads why.
        Err(err) if err.code == CONTENT_LENGTH_MISMATCH => {
            observed.finish(
                Some(err.status.as_u16()),
                Outcome::Refused,
                0,
                &upstream_name,
            );
            inner_refusal(context, encoder, err.into_response())
        }
        Err(err) => {
            let outcome = match err.code {
                "ConnectUpstreamFailed" => Outcome::UpstreamUnreachable,
                "UpstreamResponseTimeout" => Outcome::Timeout,
                _ => Outcome::Error,
            };
            observed.finish(Some(err.status.as_u16()), outcome, 0, &upstream_name);
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
    replay: &super::freshness::ReplayGuard,
    rejection: Rejection,
) -> Result<Response<Body>, TngError> {
    context.metrics.replay_refused();
    let (window, capacity) = (replay.window(), replay.capacity());
    match rejection {
        Rejection::Stale { date, now } => {
            let message = format!(
                "request Date {} is outside the replay window of {}s around the egress time {}\n",
                httpdate::fmt_http_date(date),
                window.as_secs(),
                httpdate::fmt_http_date(now),
            );
            // The dates are fields, not part of the message: a flood of stale requests is
            // then one line repeated, which the log's rate limit collapses.
            tracing::warn!(
                date = %httpdate::fmt_http_date(date),
                egress_time = %httpdate::fmt_http_date(now),
                "tunnel request refused with 400: Date outside the replay window"
            );
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
                "too many requests from this source within the replay window ({} remembered \
                 in all, limits.replay_capacity); retry later",
                capacity
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
                    let pushed = reader.push(&data);
                    if let Err(MetadataError::TooLong { .. }) = &pushed {
                        context.metrics.limit_hit(Limit::MaxMetadataBytes);
                    }
                    if let Some(done) = pushed.map_err(metadata_error)? {
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
        (Some(metadata::ClientAuth::NoAuth(_)), Some(_)) => {
            context
                .metrics
                .attestation(tng_telemetry::Attestation::Failed(
                    tng_telemetry::AttestationFailure::InvalidEvidence,
                ));
            Err(invalid(
                "client attestation is required but no attestation info was provided".into(),
            ))
        }
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
            let verified = verifier.verify(&attested.attestation_result, &expected);
            context.metrics.attestation(match &verified {
                Ok(_) => tng_telemetry::Attestation::Verified,
                Err(e) => tng_telemetry::Attestation::Failed(crate::attestation::failure_of(e)),
            });
            verified.map_err(|e| invalid(format!("client attestation failed: {e}")))?;
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
    // Decoder errors can quote the decrypted request (a header name, a method): log them, but
    // answer the outer leg with what kind of failure it was only.
    let public = match err {
        ReadError::Body(_) => "reading the tunnel body failed",
        ReadError::Ohttp(_) => "the encapsulated request cannot be opened",
        ReadError::Bhttp(_) | ReadError::Truncated => {
            "the decrypted request is not a valid binary HTTP message"
        }
        ReadError::ContentTooLong | ReadError::ContentTooShort => {
            "the content does not match its Content-Length"
        }
    };
    TngError::new(StatusCode::INTERNAL_SERVER_ERROR, "BhttpError", public)
        .with_detail(err.to_string())
}

/// Why an opened request is not forwarded: a refusal the client reads inside the tunnel (its
/// request is malformed), or a failure of the tunnel itself (answered on the outer leg).
enum NotForwarded {
    Inner(TngError),
    Outer(TngError),
}

/// Who sent an opened request: the connection's source and whether the ingress is attested.
struct Client {
    source: Source,
    attested: bool,
}

async fn build_backend_request(
    context: &OhttpEgress,
    upstream: SocketAddr,
    outer_headers: &HeaderMap,
    client: Client,
    head: RequestHead,
    mut reader: Reader,
    failure: FailureSlot,
) -> Result<Request<Body>, NotForwarded> {
    let RequestHead {
        method,
        authority,
        path,
        mut headers,
        ..
    } = head;
    // The same rules the ingress applies to plain requests, on the decrypted one: whatever
    // reaches the service has one meaning for it.
    if method == http::Method::CONNECT {
        return Err(NotForwarded::Inner(TngError::new(
            StatusCode::NOT_IMPLEMENTED,
            "UpgradeNotSupported",
            "CONNECT cannot be carried over OHTTP",
        )));
    }
    rules::check_target(&method, &path).map_err(NotForwarded::Inner)?;
    let framing = rules::request_framing(&headers).map_err(NotForwarded::Inner)?;
    let host =
        rules::effective_host(&headers, Some(&authority), true).map_err(NotForwarded::Inner)?;
    strip_connection_specific(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    for (name, value) in outer_headers {
        if context.request_passthrough.allows(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    super::client_ip::apply(
        &mut headers,
        context.client_ip,
        client.source,
        client.attested,
    );
    if let Some(host) = host {
        headers.insert(header::HOST, host);
    }
    let declared_length = match framing {
        rules::Framing::Length(n) => Some(n),
        _ => None,
    };
    // The first event says whether there is content at all (for a body-less request it is in
    // the first chunk already), so a Content-Length the content contradicts is refused before
    // anything reaches the service. Later contradictions fail the body mid-way (see
    // `request_body`): the service never sees a complete request.
    let first = match reader.next_event().await {
        Ok(Some(Event::Data(first))) => Some(first),
        Ok(_) => None,
        Err(err) => return Err(NotForwarded::Outer(read_error(err))),
    };
    let body = match (first, declared_length) {
        (Some(first), Some(n)) if first.len() as u64 > n => {
            return Err(NotForwarded::Inner(content_length_mismatch(
                "the content is longer than its Content-Length",
            )))
        }
        (None, Some(n)) if n > 0 => {
            return Err(NotForwarded::Inner(content_length_mismatch(
                "the content is shorter than its Content-Length",
            )))
        }
        (None, Some(_)) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            empty()
        }
        (None, None) => empty(),
        (Some(first), Some(n)) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            request_body(reader, Some(first), Some(n), failure)
        }
        (Some(first), None) => {
            // Content of unknown length is sent chunked whatever the method: left to itself
            // the client library would send a GET or HEAD as body-less and drop the content
            // (RFC 9110 §9.3.1 gives such content no meaning, but it is the client's to send).
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            request_body(reader, Some(first), None, failure)
        }
    };
    let path_and_query = http::uri::PathAndQuery::try_from(path.as_str()).map_err(|_| {
        NotForwarded::Inner(TngError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestTarget",
            "the request target contains characters not allowed in a URI",
        ))
    })?;
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = http::uri::Authority::try_from(upstream.to_string().as_str()).ok();
    uri.path_and_query = Some(path_and_query);
    let uri = http::Uri::from_parts(uri).map_err(|e| {
        NotForwarded::Outer(TngError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("cannot build the request to the service: {e}"),
        ))
    })?;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

pub const CONTENT_LENGTH_MISMATCH: &str = "ContentLengthMismatch";

fn content_length_mismatch(why: &str) -> TngError {
    TngError::new(StatusCode::BAD_REQUEST, CONTENT_LENGTH_MISMATCH, why)
}

/// The decrypted request body, streamed to the service as it is opened.
fn request_body(
    reader: Reader,
    first: Option<Bytes>,
    content_length: Option<u64>,
    failure: FailureSlot,
) -> Body {
    plaintext_body(reader, content_length, true, first, move |err| {
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
                ReadError::ContentTooLong => {
                    content_length_mismatch("the content is longer than its Content-Length")
                }
                ReadError::ContentTooShort => {
                    content_length_mismatch("the content is shorter than its Content-Length")
                }
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
                context.metrics.limit_hit(Limit::ResponseTimeout);
                return Err(TngError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "UpstreamResponseTimeout",
                    format!(
                        "the service sent no response within {}s (limits.response_timeout)",
                        limit.as_secs()
                    ),
                )
                .with_detail(format!("service {upstream}")));
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
            // The service's address and the causes stay in the log: the outer leg is read
            // by whoever sits on it.
            let mut detail = format!("{what} at {upstream}: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                detail.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Err(TngError::new(StatusCode::BAD_GATEWAY, code, what).with_detail(detail))
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
