//! The Attestation Agent's "API Server Rest" HTTP proxy (`aa_provider: coco_asr`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{tee, AaError, RawEvidence};
use crate::http::HttpClient;

/// A client of the ASR (`asr_addr`, e.g. `http://127.0.0.1:8006`).
pub struct AsrClient {
    base: String,
    http: HttpClient,
    tee: OnceCell<String>,
}

impl std::fmt::Debug for AsrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrClient")
            .field("base", &self.base)
            .finish()
    }
}

impl AsrClient {
    pub fn new(asr_addr: &str, so_mark: Option<u32>) -> Result<Self, AaError> {
        let base = asr_addr.trim_end_matches('/').to_owned();
        let valid = base.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        if !valid {
            return Err(AaError::InvalidAddress(asr_addr.to_owned()));
        }
        Ok(Self {
            base,
            http: HttpClient::new(so_mark).map_err(|reason| AaError::Asr {
                url: asr_addr.to_owned(),
                reason,
            })?,
            tee: OnceCell::new(),
        })
    }

    async fn get(&self, path_and_query: &str) -> Result<Bytes, AaError> {
        let url = format!("{}{path_and_query}", self.base);
        let fail = |reason: String| AaError::Asr {
            url: url.clone(),
            reason,
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| fail(e.to_string()))?;
        let response = self.http.send(request).await.map_err(&fail)?;
        if !response.status.is_success() {
            let body = String::from_utf8_lossy(&response.body);
            let body: String = body.chars().take(512).collect();
            return Err(fail(format!("status {}: {}", response.status, body.trim())));
        }
        Ok(response.body)
    }

    /// `GET /info` → `{"tee": ..}`, fetched once and cached.
    pub async fn tee_type(&self) -> Result<String, AaError> {
        self.tee
            .get_or_try_init(|| async {
                let body = self.get("/info").await.map_err(|e| match e {
                    AaError::Asr { url, reason } => {
                        AaError::GetTeeType(format!("ASR {url}: {reason}"))
                    }
                    other => other,
                })?;
                let info: Value = serde_json::from_slice(&body).map_err(|_| {
                    AaError::GetTeeType("ASR /info did not answer a JSON object".into())
                })?;
                let reported = info
                    .get("tee")
                    .and_then(Value::as_str)
                    .ok_or_else(|| AaError::GetTeeType("ASR /info has no \"tee\" string".into()))?;
                tee::parse_tee(reported).ok_or_else(|| AaError::UnknownTee(reported.to_owned()))
            })
            .await
            .cloned()
    }

    pub(crate) async fn collect(&self, digest: &[u8]) -> Result<RawEvidence, AaError> {
        let tee = self.tee_type().await?;
        let query = format!(
            "runtime_data={}&encoding=base64",
            URL_SAFE_NO_PAD.encode(digest)
        );
        let evidence = self
            .get(&format!("/aa/evidence?{query}"))
            .await
            .map_err(|e| AaError::GetEvidence(e.to_string()))?;
        if evidence.is_empty() {
            return Err(AaError::GetEvidence(
                "the ASR returned empty evidence".into(),
            ));
        }
        let additional = match self.get(&format!("/aa/additional-evidence?{query}")).await {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => Some(bytes.to_vec()),
            Err(e) => {
                tracing::warn!(error = %e, "no additional evidence from the ASR");
                None
            }
        };
        Ok(RawEvidence {
            tee,
            evidence: evidence.to_vec(),
            additional,
        })
    }
}
