//! `x-tng-ohttp-api: /tng/key-config`: tells the ingress which key to encrypt to.

use std::time::UNIX_EPOCH;

use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tng_ohttp::api::{HpkeKeyConfig, KeyConfigRequest, KeyConfigResponse};

use super::EgressContext;
use crate::error::TngError;
use crate::http::body::{json_response, read_small, Body};

/// Key-config requests are tiny JSON documents; anything bigger is not one.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub async fn serve(
    context: &EgressContext,
    req: Request<Incoming>,
) -> Result<Response<Body>, TngError> {
    let (parts, body) = req.into_parts();
    // No content-type means "no body", like `{"attestation_request": null}` (upstream does so).
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        let is_json = content_type.to_str().is_ok_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
        if !is_json {
            return Err(bad_payload(
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = read_small(body, MAX_REQUEST_BYTES)
            .await
            .map_err(|e| bad_payload(&format!("cannot read the request body: {e}")))?;
        let _request: KeyConfigRequest = serde_json::from_slice(&bytes)
            .map_err(|e| bad_payload(&format!("invalid key-config request: {e}")))?;
        // Attestation of this egress is not configured, so any attestation request is answered
        // with `attestation_info: null`; a verifying ingress then refuses the key, as it must.
    }
    let (key, expire_at) = context.keys.client_visible().ok_or_else(|| {
        TngError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NoActiveKey",
            "no active OHTTP key at the moment; retry shortly",
        )
    })?;
    let expire_timestamp = expire_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let response = KeyConfigResponse {
        hpke_key_config: HpkeKeyConfig::new(std::slice::from_ref(key.config()), expire_timestamp),
        attestation_info: None,
    };
    let json = serde_json::to_string(&response).map_err(|e| {
        TngError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "KeyConfigEncodeFailed",
            e.to_string(),
        )
    })?;
    Ok(json_response(StatusCode::OK, json))
}

fn bad_payload(message: &str) -> TngError {
    TngError::new(StatusCode::BAD_REQUEST, "InvalidRequestPayload", message)
}
