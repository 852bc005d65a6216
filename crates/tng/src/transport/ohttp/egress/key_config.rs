//! `x-tng-ohttp-api: /tng/key-config`: tells the ingress which key to encrypt to.

use std::time::{Duration, Instant, UNIX_EPOCH};

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
        (Some(attester), Some(wanted)) => Some(
            context
                .evidence
                .attest(attester, wanted, &hpke_key_config, true)
                .await?,
        ),
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
                .map_err(|e| failed("cannot get evidence".into()).with_detail(e.to_string()))?;
            let evidence = serde_json::to_value(&evidence).map_err(|e| failed(e.to_string()))?;
            Ok(AttestationInfo::BackgroundCheck {
                evidence,
                aa_provider: Some("coco".into()),
            })
        }
        (Model::Passport, AttestationRequest::Passport) => {
            let claims = tng_attest::claims::server_claims(None, key_config);
            let token = attester.passport_token(&claims).await.map_err(|e| {
                failed("cannot get an attestation token".into()).with_detail(e.to_string())
            })?;
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
    let interval = attester.refresh_interval();
    // `refresh_interval: 0` asks for a fresh token on every request: not even the evidence
    // cache answers (the rate limit still applies).
    let info = context
        .evidence
        .attest(
            attester,
            AttestationRequest::Passport,
            hpke_key_config,
            !interval.is_zero(),
        )
        .await?;
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

/// Evidence on demand costs the Attestation Agent real work (hundreds of milliseconds of TEE
/// quoting) for any unauthenticated key-config request. This bounds it: a few at a time, a
/// steady rate with a small burst, and the same challenge for the same key config (a client
/// retrying, or many asking with one challenge) answered from a short cache — the evidence is
/// bound to exactly those claims, so it is the very evidence a fresh call would return.
pub struct EvidenceGate {
    permits: tokio::sync::Semaphore,
    bucket: std::sync::Mutex<Bucket>,
    cache: std::sync::Mutex<std::collections::VecDeque<CachedEvidence>>,
}

pub const EVIDENCE_CONCURRENCY: usize = 4;
/// Longest a request waits for one of the permits before it is refused.
pub const EVIDENCE_QUEUE_WAIT: Duration = Duration::from_secs(5);
pub const EVIDENCE_RATE_PER_SEC: f64 = 10.0;
pub const EVIDENCE_BURST: f64 = 20.0;
const EVIDENCE_CACHE_ENTRIES: usize = 64;
const EVIDENCE_CACHE_TTL: Duration = Duration::from_secs(30);

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct CachedEvidence {
    wanted: AttestationRequest,
    key_config: HpkeKeyConfig,
    until: Instant,
    info: AttestationInfo,
}

impl Default for EvidenceGate {
    fn default() -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(EVIDENCE_CONCURRENCY),
            bucket: std::sync::Mutex::new(Bucket {
                tokens: EVIDENCE_BURST,
                at: Instant::now(),
            }),
            cache: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }
}

impl EvidenceGate {
    async fn attest(
        &self,
        attester: &tng_attest::Attester,
        wanted: AttestationRequest,
        hpke_key_config: &HpkeKeyConfig,
        reuse: bool,
    ) -> Result<AttestationInfo, TngError> {
        if let Some(info) = self.cached(&wanted, hpke_key_config).filter(|_| reuse) {
            return Ok(info);
        }
        self.take_token()?;
        let _permit = tokio::time::timeout(EVIDENCE_QUEUE_WAIT, self.permits.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| busy("too many attestations in progress; retry shortly"))?;
        // Another request may have produced it while this one queued.
        if let Some(info) = self.cached(&wanted, hpke_key_config).filter(|_| reuse) {
            return Ok(info);
        }
        let info = attest(attester, wanted.clone(), hpke_key_config).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= EVIDENCE_CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back(CachedEvidence {
            wanted,
            key_config: hpke_key_config.clone(),
            until: Instant::now() + EVIDENCE_CACHE_TTL,
            info: info.clone(),
        });
        Ok(info)
    }

    fn cached(
        &self,
        wanted: &AttestationRequest,
        hpke_key_config: &HpkeKeyConfig,
    ) -> Option<AttestationInfo> {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|c| now < c.until);
        cache
            .iter()
            .find(|c| &c.wanted == wanted && &c.key_config == hpke_key_config)
            .map(|c| c.info.clone())
    }

    fn take_token(&self) -> Result<(), TngError> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * EVIDENCE_RATE_PER_SEC;
        bucket.tokens = (bucket.tokens + refill).min(EVIDENCE_BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(busy("too many attestation requests; retry shortly"));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

fn busy(message: &str) -> TngError {
    TngError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "AttestationRateLimited",
        message,
    )
}

fn bad_payload(message: &str) -> TngError {
    TngError::new(StatusCode::BAD_REQUEST, "InvalidRequestPayload", message)
}
