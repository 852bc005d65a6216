//! Request routing for the test backend. Routes match on the path only.
//!
//! | route | behaviour |
//! |---|---|
//! | `/echo` | 200, request body streamed back; `x-echo-method`, `x-echo-uri`, `x-echo-host`, `x-echo-version`, `x-echo-h-<name>` for each `x-*` request header; `content-type` copied. A request header `x-set-<name>: v` also sets response header `<name>: v`. |
//! | `/bytes?n=N[&chunk=C][&te=chunked]` | N pattern bytes (see `pattern`) in frames of C (64 KiB) |
//! | `/sink` (POST/PUT) | `{"bytes":N,"sha256":"<hex>"}` of the streamed request body |
//! | `/sse?id=ID&n=N` | event stream gated by `/sse-ack?id=ID&i=I` (see `sse`) |
//! | `/status?code=C` | that status, small body |
//! | `/slow?ms=M` | 200 after M ms |
//! | `/headers` | JSON of the request headers |
//! | `/__stats` | `{"requests": N}` (side channels not counted) |
//! | other | `hello from backend: METHOD PATH` |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::body::{full, Body};
use super::{pattern, sse, Shared};

pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path != "/__stats" && path != "/sse-ack" {
        shared.requests.fetch_add(1, Ordering::SeqCst);
    }
    let query = parse_query(req.uri().query());
    let response = match path.as_str() {
        "/echo" => echo(req),
        "/bytes" => bytes(&query),
        "/sink" if req.method() == Method::POST || req.method() == Method::PUT => sink(req).await,
        "/sse" => sse_stream(shared.clone(), &query),
        "/sse-ack" => sse_ack(&shared, &query),
        "/status" => status(&query),
        "/slow" => slow(&query).await,
        "/headers" => headers(&req),
        "/__stats" => json(
            StatusCode::OK,
            serde_json::json!({"requests": shared.requests.load(Ordering::SeqCst)}),
        ),
        _ => text(
            StatusCode::OK,
            format!("hello from backend: {} {}", req.method(), path),
        ),
    };
    Ok(response)
}

fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn bad_request(message: &str) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut resp = Response::new(body.map_err(|e| Box::new(e) as super::body::Error).boxed());
    let out = resp.headers_mut();
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let pairs = [
        ("x-echo-method", parts.method.as_str().to_string()),
        ("x-echo-uri", uri),
        ("x-echo-host", host),
        ("x-echo-version", format!("{:?}", parts.version)),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(name, value);
        }
    }
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if !name.starts_with("x-") {
            continue;
        }
        if let Ok(echoed) = HeaderName::from_bytes(format!("x-echo-h-{name}").as_bytes()) {
            out.append(echoed, value.clone());
        }
        if let Some(target) = name.strip_prefix("x-set-") {
            if let Ok(target) = HeaderName::from_bytes(target.as_bytes()) {
                out.append(target, value.clone());
            }
        }
    }
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        out.insert(CONTENT_TYPE, ct.clone());
    }
    resp
}

fn bytes(query: &BTreeMap<String, String>) -> Response<Body> {
    let Some(n) = query.get("n").and_then(|v| v.parse::<u64>().ok()) else {
        return bad_request("/bytes needs n=<count>");
    };
    let chunk = match query.get("chunk").map(|c| c.parse::<usize>()) {
        None => 64 * 1024,
        Some(Ok(c)) if c > 0 && c <= 16 << 20 => c,
        Some(_) => return bad_request("chunk must be 1..=16777216"),
    };
    let chunked = query.get("te").map(String::as_str) == Some("chunked");
    let body = StreamBody::new(pattern::frames(n, chunk));
    // A StreamBody has no size hint, so hyper uses chunked coding unless we set the length.
    let mut resp = Response::new(body.boxed());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if !chunked {
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

async fn sink(req: Request<Incoming>) -> Response<Body> {
    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    count += data.len() as u64;
                }
            }
            Err(err) => {
                tracing::warn!("/sink: body error after {count} bytes: {err}");
                return bad_request(&format!("body error after {count} bytes: {err}"));
            }
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({"bytes": count, "sha256": hex::encode(hasher.finalize())}),
    )
}

fn sse_stream(shared: Arc<Shared>, query: &BTreeMap<String, String>) -> Response<Body> {
    let (Some(id), Some(n)) = (
        query.get("id").cloned(),
        query.get("n").and_then(|v| v.parse::<u64>().ok()),
    ) else {
        return bad_request("/sse needs id=<id>&n=<count>");
    };
    let mut resp = Response::new(StreamBody::new(sse::events(shared, id, n)).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn sse_ack(shared: &Shared, query: &BTreeMap<String, String>) -> Response<Body> {
    let (Some(id), Some(i)) = (
        query.get("id"),
        query.get("i").and_then(|v| v.parse::<u64>().ok()),
    ) else {
        return bad_request("/sse-ack needs id=<id>&i=<index>");
    };
    shared.sse.ack(id, i);
    text(StatusCode::OK, "ack\n".to_string())
}

fn status(query: &BTreeMap<String, String>) -> Response<Body> {
    let code = query
        .get("code")
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok());
    match code {
        // 1xx cannot be a final response.
        Some(code) if code.as_u16() >= 200 => text(code, format!("status {}\n", code.as_u16())),
        _ => bad_request("/status needs code=<200..999>"),
    }
}

async fn slow(query: &BTreeMap<String, String>) -> Response<Body> {
    let ms = query
        .get("ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    text(StatusCode::OK, format!("slow {ms} ms\n"))
}

fn headers(req: &Request<Incoming>) -> Response<Body> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    json(StatusCode::OK, serde_json::json!(map))
}
