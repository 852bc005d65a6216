//! HTTP routing of the RESTful Attestation Service API (spec §A6).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;

use super::evaluate::Service;
use super::problem::Problem;

/// Evidence bodies are a few KiB; anything far larger is a client bug.
const MAX_BODY: usize = 4 << 20;

type Reply = Response<Full<Bytes>>;

pub async fn handle(
    service: Arc<Service>,
    request: Request<Incoming>,
) -> Result<Reply, std::convert::Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    // The AS is a control-plane JSON API, not the data path: its requests are parsed whole,
    // and the limit bounds what one may hold.
    #[allow(clippy::disallowed_methods)]
    let collected = Limited::new(request.into_body(), MAX_BODY).collect().await;
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return Ok(problem(&Problem::invalid_request(format!(
                "cannot read body: {err}"
            ))))
        }
    };
    let reply = match (&method, path.as_str()) {
        (&Method::POST, "/challenge") => {
            json_reply(StatusCode::OK, &service.challenger.issue(now()))
        }
        (&Method::POST, "/attestation") => attestation(&service, &body).await,
        (&Method::GET, "/certificate") => Response::builder()
            .header(http::header::CONTENT_TYPE, "application/x-pem-file")
            .body(Full::from(service.signer.chain_pem.clone()))
            .unwrap_or_default(),
        (&Method::POST, "/policy") => set_policy(&service, &body),
        (&Method::GET, "/policy") => list_policies(&service),
        (&Method::GET, id) if id.starts_with("/policy/") => get_policy(&service, &id[8..]),
        (&Method::DELETE, id) if id.starts_with("/policy/") => delete_policy(&service, &id[8..]),
        _ => json_reply(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    };
    tracing::info!("{method} {path} -> {}", reply.status().as_u16());
    Ok(reply)
}

async fn attestation(service: &Arc<Service>, body: &Bytes) -> Reply {
    // Policy evaluation and signatures are CPU work; keep them off the I/O threads.
    let service = service.clone();
    let body = body.clone();
    let outcome = tokio::task::spawn_blocking(move || service.attest(&body, now())).await;
    match outcome {
        Ok(Ok(token)) => Response::builder()
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(Full::from(token))
            .unwrap_or_default(),
        Ok(Err(rejected)) => {
            tracing::warn!("attestation refused: {} {}", rejected.code, rejected.detail);
            problem(&rejected)
        }
        Err(err) => problem(&Problem::policy_failed(format!(
            "appraisal task failed: {err}"
        ))),
    }
}

#[derive(Deserialize)]
struct PolicyUpload {
    policy_id: String,
    policy: String,
}

fn set_policy(service: &Service, body: &[u8]) -> Reply {
    let upload: PolicyUpload = match serde_json::from_slice(body) {
        Ok(upload) => upload,
        Err(err) => return problem(&Problem::invalid_request(err.to_string())),
    };
    let rego = URL_SAFE_NO_PAD
        .decode(upload.policy.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(&upload.policy))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(rego) = rego else {
        return problem(&Problem::invalid_request(
            "policy must be base64url of UTF-8 Rego text".into(),
        ));
    };
    match service.policies.set(&upload.policy_id, rego) {
        Ok(()) => Response::new(Full::default()),
        Err(err) => problem(&Problem::new(
            400,
            "AS.POLICY.INVALID",
            "Invalid policy",
            err,
        )),
    }
}

fn list_policies(service: &Service) -> Reply {
    let listing: serde_json::Map<String, Value> = service
        .policies
        .all()
        .into_iter()
        .map(|(id, rego)| (id, json!({"hash": hex::encode(sha2::Sha384::digest(rego))})))
        .collect();
    json_reply(StatusCode::OK, &Value::Object(listing))
}

fn get_policy(service: &Service, id: &str) -> Reply {
    match service.policies.get(id) {
        Some(rego) => json_reply(
            StatusCode::OK,
            &json!({"policy_id": id, "policy": URL_SAFE_NO_PAD.encode(rego)}),
        ),
        None => problem(&Problem::policy_not_found(id)),
    }
}

fn delete_policy(service: &Service, id: &str) -> Reply {
    if service.policies.remove(id) {
        Response::new(Full::default())
    } else {
        problem(&Problem::policy_not_found(id))
    }
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::from(value.to_string()))
        .unwrap_or_default()
}

fn problem(problem: &Problem) -> Reply {
    Response::builder()
        .status(problem.status)
        .header(http::header::CONTENT_TYPE, "application/problem+json")
        .body(Full::from(problem.body().to_string()))
        .unwrap_or_default()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
