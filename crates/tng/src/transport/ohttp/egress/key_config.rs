//! `x-tng-ohttp-api: /tng/key-config`: tells the ingress which key to encrypt to.

use std::time::{Instant, UNIX_EPOCH};

use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use tng_attest::Model;
use tng_ohttp::api::{
    AttestationInfo, AttestationRequest, HpkeKeyConfig, KeyConfigRequest, KeyConfigResponse,
};

use super::OhttpEgress;
use crate::error::TngError;
use crate::http::body::{is_json, json_response, read_small, Body};
use crate::http::body_timer::RequestBody;

/// Key-config requests are tiny JSON documents; anything bigger is not one.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub async fn serve(
    context: &OhttpEgress,
    req: Request<RequestBody>,
) -> Result<Response<Body>, TngError> {
    let (parts, body) = req.into_parts();
    let mut request = KeyConfigRequest {
        attestation_request: None,
    };
    // No content-type means "no body", like `{"attestation_request": null}` (upstream does so).
    if parts.headers.contains_key(CONTENT_TYPE) {
        if !is_json(&parts.headers) {
            return Err(bad_payload(
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = read_small(body, MAX_REQUEST_BYTES)
            .await
            .map_err(|e| bad_payload(&format!("cannot read the request body: {e}")))?;
        request = serde_json::from_slice(&bytes)
            .map_err(|e| bad_payload(&format!("invalid key-config request: {e}")))?;
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
    let hpke_key_config = HpkeKeyConfig::new(std::slice::from_ref(key.config()), expire_timestamp);
    let attestation_info = match (&context.attester, request.attestation_request) {
        // Nobody asked, or we do not attest: a verifying ingress then refuses the key itself.
        (None, _) | (_, None) => None,
        (Some(attester), Some(AttestationRequest::Passport))
            if attester.model() == Model::Passport =>
        {
            Some(passport(context, attester, &hpke_key_config).await?)
        }
        (Some(attester), Some(wanted)) => Some(attest(attester, wanted, &hpke_key_config).await?),
    };
    let response = KeyConfigResponse {
        hpke_key_config,
        attestation_info,
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

/// Evidence (background check) or a token (passport) bound to exactly the key config we return.
async fn attest(
    attester: &tng_attest::Attester,
    wanted: AttestationRequest,
    hpke_key_config: &HpkeKeyConfig,
) -> Result<AttestationInfo, TngError> {
    let failed = |message: String| {
        TngError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "GenServerHpkeConfigurationResponseFailed",
            message,
        )
    };
    let key_config = serde_json::to_value(hpke_key_config).map_err(|e| failed(e.to_string()))?;
    match (attester.model(), wanted) {
        (Model::BackgroundCheck, AttestationRequest::BackgroundCheck { challenge_token }) => {
            let claims = tng_attest::claims::server_claims(Some(&challenge_token), key_config);
            let evidence = attester
                .evidence(&claims)
                .await
                .map_err(|e| failed(format!("cannot get evidence: {e}")))?;
            let evidence = serde_json::to_value(&evidence).map_err(|e| failed(e.to_string()))?;
            Ok(AttestationInfo::BackgroundCheck {
                evidence,
                aa_provider: Some("coco".into()),
            })
        }
        (Model::Passport, AttestationRequest::Passport) => {
            let claims = tng_attest::claims::server_claims(None, key_config);
            let token = attester
                .passport_token(&claims)
                .await
                .map_err(|e| failed(format!("cannot get an attestation token: {e}")))?;
            Ok(AttestationInfo::Passport {
                attestation_result: token,
                as_provider: Some("coco".into()),
            })
        }
        (Model::Passport, AttestationRequest::BackgroundCheck { .. }) => Err(failed(
            "Passport model is expected but background check model is requested by the client"
                .into(),
        )),
        (Model::BackgroundCheck, AttestationRequest::Passport) => Err(failed(
            "Background check model is expected but passport model is requested by the client"
                .into(),
        )),
    }
}

pub struct CachedPassport {
    key_config: HpkeKeyConfig,
    until: Instant,
    info: AttestationInfo,
}

/// Passport answers cost an AA call and an AS round trip; they are cached as upstream does.
async fn passport(
    context: &OhttpEgress,
    attester: &tng_attest::Attester,
    hpke_key_config: &HpkeKeyConfig,
) -> Result<AttestationInfo, TngError> {
    let reuse = |cache: &Option<CachedPassport>| {
        cache
            .as_ref()
            .filter(|c| &c.key_config == hpke_key_config && Instant::now() < c.until)
            .map(|c| c.info.clone())
    };
    if let Some(info) = reuse(
        &context
            .passport_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    ) {
        return Ok(info);
    }
    let info = attest(attester, AttestationRequest::Passport, hpke_key_config).await?;
    let interval = attester.refresh_interval();
    if !interval.is_zero() {
        *context
            .passport_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(CachedPassport {
            key_config: hpke_key_config.clone(),
            until: Instant::now() + interval,
            info: info.clone(),
        });
    }
    Ok(info)
}

fn bad_payload(message: &str) -> TngError {
    TngError::new(StatusCode::BAD_REQUEST, "InvalidRequestPayload", message)
}
