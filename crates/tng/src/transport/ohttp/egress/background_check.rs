//! The background-check relay endpoints: an attesting ingress gets its challenge from, and has
//! its evidence converted by, the Attestation Service this egress trusts (spec §5).

use http::{Request, Response, StatusCode};
use tng_attest::{CocoEvidence, Model, Verifier};
use tng_ohttp::api::{ChallengeResponse, VerifyRequest, VerifyResponse};

use super::OhttpEgress;
use crate::error::TngError;
use crate::http::body::{is_json, json_response, read_small, Body};
use crate::http::body_timer::RequestBody;

const MAX_EVIDENCE_BYTES: usize = 1024 * 1024;

fn background_check_verifier<'a>(
    context: &'a OhttpEgress,
    code: &'static str,
) -> Result<&'a Verifier, TngError> {
    let fail = |message: &str| TngError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    match context.verifier.as_deref() {
        None => Err(fail("client attestation is not required by this egress")),
        Some(v) if v.model() == Model::Passport => Err(fail(
            "Passport model is expected for client attestation but background check was requested",
        )),
        Some(v) => Ok(v),
    }
}

pub async fn challenge(context: &OhttpEgress) -> Result<Response<Body>, TngError> {
    const CODE: &str = "ServerVerifyClientGetChallengeTokenFailed";
    let verifier = background_check_verifier(context, CODE)?;
    let challenge_token = verifier
        .challenge()
        .await
        .map_err(|e| TngError::new(StatusCode::INTERNAL_SERVER_ERROR, CODE, e.to_string()))?;
    json(&ChallengeResponse { challenge_token }, CODE)
}

pub async fn verify(
    context: &OhttpEgress,
    req: Request<RequestBody>,
) -> Result<Response<Body>, TngError> {
    const CODE: &str = "ServerVerifyClientEvidenceFailed";
    let verifier = background_check_verifier(context, CODE)?;
    let bad =
        |message: String| TngError::new(StatusCode::BAD_REQUEST, "InvalidRequestPayload", message);
    if !is_json(req.headers()) {
        return Err(bad(
            "Expected request with `Content-Type: application/json`".into(),
        ));
    }
    let bytes = read_small(req.into_body(), MAX_EVIDENCE_BYTES)
        .await
        .map_err(|e| bad(format!("cannot read the request body: {e}")))?;
    let request: VerifyRequest =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid verify request: {e}")))?;
    let evidence: CocoEvidence = serde_json::from_value(request.evidence)
        .map_err(|e| bad(format!("invalid evidence: {e}")))?;
    let attestation_result = verifier
        .convert(&evidence)
        .await
        .map_err(|e| TngError::new(StatusCode::INTERNAL_SERVER_ERROR, CODE, e.to_string()))?;
    json(
        &VerifyResponse {
            attestation_result,
            as_provider: Some("coco".into()),
        },
        CODE,
    )
}

fn json<T: serde::Serialize>(value: &T, code: &'static str) -> Result<Response<Body>, TngError> {
    let text = serde_json::to_string(value)
        .map_err(|e| TngError::new(StatusCode::INTERNAL_SERVER_ERROR, code, e.to_string()))?;
    Ok(json_response(StatusCode::OK, text))
}
