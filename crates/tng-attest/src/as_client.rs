//! RESTful Attestation Service (trustee) client: `/challenge`, `/attestation` (v1.6.0 body with
//! the v1.5.2 fallback) and `/certificate`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::claims::{CocoEvidence, EvidenceFormatError};
use crate::http::{HttpClient, HttpResponse};

/// The challenge token used when the Attestation Service has no challenge endpoint usable
/// without TEE parameters (trustee(coco)); it gives no freshness.
pub const DUMMY_NONCE: &str = "dummy nonce";

/// What trustee(coco) answers to `POST /challenge {}`.
const NO_INNER_TEE: &str = "Failed to get inner tee";
/// What an Attestation Service that only speaks the v1.5.2 body answers to the v1.6.0 body.
const MISSING_TEE: &str = "missing field `tee`";

const USER_AGENT_VALUE: &str = concat!("tng/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum AsError {
    #[error("attestation service address {0:?} is not an http:// or https:// URL")]
    InvalidAddress(String),
    #[error("as_headers: {0}")]
    InvalidHeader(String),
    #[error("attestation service HTTP client: {0}")]
    Client(String),
    #[error("attestation service unreachable: {method} {url}: {reason}")]
    Unreachable {
        method: Method,
        url: String,
        reason: String,
    },
    #[error("attestation service {method} {url} failed with status {status}: {detail}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        detail: String,
    },
    #[error("attestation service {method} {url}: unexpected response: {reason}")]
    BadResponse {
        method: Method,
        url: String,
        reason: String,
    },
    #[error("cannot send evidence to the attestation service: {0}")]
    Evidence(#[from] EvidenceFormatError),
}

/// A client of one Attestation Service (`as_addr`).
#[derive(Clone)]
pub struct AsClient {
    base: String,
    headers: HeaderMap,
    http: HttpClient,
}

impl std::fmt::Debug for AsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsClient")
            .field("base", &self.base)
            .finish()
    }
}

impl AsClient {
    /// `as_addr` is the base URL (a trailing `/` is ignored); `as_headers` go on every request;
    /// `so_mark` marks every socket this client opens.
    pub fn new(
        as_addr: &str,
        as_headers: &BTreeMap<String, String>,
        so_mark: Option<u32>,
    ) -> Result<Self, AsError> {
        let base = as_addr.trim_end_matches('/').to_owned();
        let valid = base.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        if !valid {
            return Err(AsError::InvalidAddress(as_addr.to_owned()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in as_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| AsError::InvalidHeader(format!("{name:?} is not a header name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                AsError::InvalidHeader(format!("the value of {name} is not a header value"))
            })?;
            headers.insert(name, value);
        }
        Ok(Self {
            base,
            headers,
            http: HttpClient::new(so_mark).map_err(AsError::Client)?,
        })
    }

    /// The base URL (without trailing `/`).
    pub fn addr(&self) -> &str {
        &self.base
    }

    /// `POST /challenge {}` → the challenge JWT (`extra-params.jwt` / `extra_params.jwt`), or
    /// [`DUMMY_NONCE`] when the service needs TEE parameters to issue a challenge.
    pub async fn challenge(&self) -> Result<String, AsError> {
        let (url, response) = self
            .call(Method::POST, "/challenge", Some(json!({})))
            .await?;
        if !response.status.is_success() {
            if String::from_utf8_lossy(&response.body).contains(NO_INNER_TEE) {
                tracing::warn!(
                    %url,
                    "the attestation service cannot issue a challenge without TEE parameters; \
                     using \"{DUMMY_NONCE}\" (no freshness guarantee)"
                );
                return Ok(DUMMY_NONCE.to_owned());
            }
            return Err(status_error(Method::POST, url, &response));
        }
        let bad = |reason: &str| AsError::BadResponse {
            method: Method::POST,
            url: url.clone(),
            reason: reason.to_owned(),
        };
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|_| bad("the challenge response is not JSON"))?;
        let params = body
            .get("extra-params")
            .or_else(|| body.get("extra_params"))
            .ok_or_else(|| bad("the challenge response has no extra-params"))?;
        let jwt = params
            .get("jwt")
            .and_then(Value::as_str)
            .filter(|jwt| !jwt.is_empty())
            .ok_or_else(|| bad("the challenge response has no extra-params.jwt string"))?;
        Ok(jwt.to_owned())
    }

    /// `POST /attestation`: appraises `evidence` (its `aa_runtime_data` is sent as the
    /// structured runtime data) against `policy_ids` and returns the token (JWT text). Sends
    /// the v1.6.0 body and falls back to v1.5.2 when the service does not know it.
    pub async fn attestation(
        &self,
        evidence: &CocoEvidence,
        policy_ids: &[String],
    ) -> Result<String, AsError> {
        let evidence_b64 = URL_SAFE_NO_PAD.encode(evidence.evidence_bytes()?);
        let runtime_data = Value::Object(evidence.runtime_data_claims()?);
        let hash_algo = evidence.hash_algo()?.to_owned();
        let devices = evidence.additional_devices()?;

        let mut requests = vec![json!({
            "tee": evidence.aa_tee_type,
            "evidence": evidence_b64,
            "runtime_data": {"structured": runtime_data},
            "init_data": null,
            "runtime_data_hash_algorithm": hash_algo,
        })];
        for (tee, device_evidence) in &devices {
            requests.push(json!({
                "tee": tee,
                "evidence": URL_SAFE_NO_PAD.encode(device_evidence.as_bytes()),
                "runtime_data": null,
                "init_data": null,
                "runtime_data_hash_algorithm": null,
            }));
        }
        let v1_6_0 = json!({"verification_requests": requests, "policy_ids": policy_ids});
        let (url, response) = self
            .call(Method::POST, "/attestation", Some(v1_6_0))
            .await?;
        if response.status.is_success() {
            return token_from(url, &response);
        }
        if !String::from_utf8_lossy(&response.body).contains(MISSING_TEE) {
            return Err(status_error(Method::POST, url, &response));
        }

        tracing::debug!(%url, "attestation service wants the v1.5.2 request body; retrying");
        if !devices.is_empty() {
            tracing::warn!(
                %url,
                "the v1.5.2 attestation API takes no additional evidence; dropping {} device(s)",
                devices.len()
            );
        }
        let v1_5_2 = json!({
            "tee": evidence.aa_tee_type,
            "evidence": evidence_b64,
            "runtime_data": {"structured": runtime_data},
            "init_data": null,
            "runtime_data_hash_algorithm": hash_algo,
            "init_data_hash_algorithm": null,
            "policy_ids": policy_ids,
        });
        let (url, response) = self
            .call(Method::POST, "/attestation", Some(v1_5_2))
            .await?;
        if response.status.is_success() {
            return token_from(url, &response);
        }
        Err(status_error(Method::POST, url, &response))
    }

    /// `GET /certificate` → every PEM certificate of the token-signer chain (DER).
    pub async fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, AsError> {
        let (url, response) = self.call(Method::GET, "/certificate", None).await?;
        if !response.status.is_success() {
            return Err(status_error(Method::GET, url, &response));
        }
        let certs = crate::verify::anchors::pem_certificates(&response.body).map_err(|reason| {
            AsError::BadResponse {
                method: Method::GET,
                url: url.clone(),
                reason,
            }
        })?;
        if certs.is_empty() {
            return Err(AsError::BadResponse {
                method: Method::GET,
                url,
                reason: "no PEM certificate in the response".into(),
            });
        }
        Ok(certs)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Value>,
    ) -> Result<(String, HttpResponse), AsError> {
        let url = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method.clone()).uri(&url);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(self.headers.clone());
        }
        let body = match json_body {
            Some(value) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(value.to_string())
            }
            None => Bytes::new(),
        };
        let request = builder
            .header(ACCEPT, "*/*")
            .body(Full::new(body))
            .map_err(|e| AsError::Unreachable {
                method: method.clone(),
                url: url.clone(),
                reason: format!("cannot build the request: {e}"),
            })?;
        match self.http.send(request).await {
            Ok(response) => Ok((url, response)),
            Err(reason) => Err(AsError::Unreachable {
                method,
                url,
                reason,
            }),
        }
    }
}

fn token_from(url: String, response: &HttpResponse) -> Result<String, AsError> {
    let text = String::from_utf8_lossy(&response.body);
    let mut token = text.trim().to_owned();
    // Tolerate a JSON string body.
    if let Ok(Value::String(inner)) = serde_json::from_str::<Value>(&token) {
        token = inner;
    }
    if token.is_empty() || token.split('.').count() != 3 {
        return Err(AsError::BadResponse {
            method: Method::POST,
            url,
            reason: "the attestation response is not a JWT".into(),
        });
    }
    Ok(token)
}

fn status_error(method: Method, url: String, response: &HttpResponse) -> AsError {
    AsError::Status {
        method,
        url,
        status: response.status,
        detail: problem_detail(response),
    }
}

/// The most useful text of an error body: `code: detail` of an RFC 9457 problem document, an
/// `error` member, or the (sanitised, truncated) body text.
fn problem_detail(response: &HttpResponse) -> String {
    const MAX: usize = 512;
    let is_json = response
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&response.body) {
        let text = |key: &str| doc.get(key).and_then(Value::as_str).map(str::to_owned);
        let detail = text("detail")
            .or_else(|| text("title"))
            .or_else(|| text("error"))
            .or_else(|| text("message"));
        if let Some(detail) = detail {
            let detail = match text("code") {
                Some(code) => format!("{code}: {detail}"),
                None => detail,
            };
            return sanitise(&detail, MAX);
        }
        if is_json {
            return sanitise(&Value::Object(doc).to_string(), MAX);
        }
    }
    let body = String::from_utf8_lossy(&response.body);
    if body.trim().is_empty() {
        return "(empty body)".into();
    }
    sanitise(body.trim(), MAX)
}

fn sanitise(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
