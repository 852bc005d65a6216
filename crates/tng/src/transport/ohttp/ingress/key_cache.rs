//! The ingress's view of each egress: the key config fetched from one base URL, refreshed
//! before the egress stops accepting it, and refetched at once when the egress says 422.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use tng_ohttp::api::{
    AttestationInfo, AttestationRequest, ChallengeResponse, ErrorBody, KeyConfigRequest,
    KeyConfigResponse, OhttpApi, VerifyRequest, VerifyResponse, API_HEADER,
};
use tng_ohttp::keys::KeyConfig;
use tng_ohttp::keys::SenderKey;
use tracing::{info, warn};

use crate::error::TngError;
use crate::http::body::{full, read_small};
use crate::http::client::HttpClient;

/// Upstream refreshes at least this often even when the egress advertises a later expiry
/// (unless this ingress attests: then its `attest.refresh_interval` sets the pace).
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
pub const USER_AGENT: &str = concat!("tng/", env!("CARGO_PKG_VERSION"));

/// This ingress's attested identity (client attestation), sent with every sealed request.
pub struct ClientIdentity {
    pub key: SenderKey,
    pub token: String,
}

#[derive(Clone)]
pub struct CachedKey {
    pub config: Arc<KeyConfig>,
    pub client: Option<Arc<ClientIdentity>>,
    /// The egress's verified attestation token, when this ingress verifies.
    attestation: Option<String>,
    /// After this the key is refreshed in the background while still being used.
    refresh_at: Instant,
    /// After this the key must not be used any more.
    expires_at: Instant,
}

/// One egress base URL.
pub struct Server {
    pub url: String,
    current: RwLock<Option<CachedKey>>,
    /// Serialises fetches so a burst of requests (or of 422s) causes one fetch.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

pub struct KeyCache {
    client: HttpClient,
    /// Present when this ingress verifies the egress (`verify`): no key is used unverified.
    verifier: Option<Arc<tng_attest::Verifier>>,
    /// Present when this ingress proves its own TEE to the egress (`attest`).
    attester: Option<Arc<tng_attest::Attester>>,
    /// Upper bound on how long a key (and the attestations behind it) is reused; zero means
    /// every request fetches and attests afresh.
    refresh_interval: Duration,
    servers: Mutex<HashMap<String, Arc<Server>>>,
}

impl KeyCache {
    pub fn new(
        client: HttpClient,
        verifier: Option<Arc<tng_attest::Verifier>>,
        attester: Option<Arc<tng_attest::Attester>>,
    ) -> Self {
        let refresh_interval = attester
            .as_ref()
            .map_or(DEFAULT_REFRESH_INTERVAL, |a| a.refresh_interval());
        Self {
            client,
            verifier,
            attester,
            refresh_interval,
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the egresses' attestation is verified before any request is sealed to them.
    pub fn verifies(&self) -> bool {
        self.verifier.is_some()
    }

    pub fn server(&self, url: &str) -> Arc<Server> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .entry(url.to_string())
            .or_insert_with(|| {
                Arc::new(Server {
                    url: url.to_string(),
                    current: RwLock::new(None),
                    fetching: Arc::new(tokio::sync::Mutex::new(())),
                })
            })
            .clone()
    }

    /// The key to encrypt to, fetching or refreshing it as needed.
    pub async fn key(self: &Arc<Self>, server: &Arc<Server>) -> Result<CachedKey, TngError> {
        if self.refresh_interval.is_zero() {
            // `refresh_interval: 0`: no reuse at all, as upstream.
            return self.fetch(server).await;
        }
        let now = Instant::now();
        if let Some(cached) = server.cached() {
            if now < cached.refresh_at {
                return Ok(cached);
            }
            if now < cached.expires_at {
                // Still valid: answer now, refresh in the background (once).
                if let Ok(guard) = server.fetching.clone().try_lock_owned() {
                    let cache = self.clone();
                    let server = server.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
                        if let Err(err) = cache.fetch(&server).await {
                            warn!(url = %server.url, "key config refresh failed, keeping the current key: {err}");
                        }
                    });
                }
                return Ok(cached);
            }
        }
        let _guard = server.fetching.lock().await;
        if let Some(cached) = server.cached() {
            if Instant::now() < cached.refresh_at {
                return Ok(cached);
            }
        }
        self.fetch(server).await
    }

    /// Forgets `config` if it is still the current key (the egress rejected it).
    pub fn invalidate(&self, server: &Server, config: &KeyConfig) {
        let mut current = server.current.write().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|c| c.config.public_key == config.public_key)
        {
            *current = None;
        }
    }

    async fn fetch(&self, server: &Server) -> Result<CachedKey, TngError> {
        // Upstream's order: our own attestation first, then the server's key config.
        let client = match &self.attester {
            Some(attester) => Some(Arc::new(
                client_identity(&self.client, &server.url, attester).await?,
            )),
            None => None,
        };
        let mut fetched = fetch_key_config(
            &self.client,
            &server.url,
            self.verifier.as_deref(),
            self.refresh_interval,
        )
        .await?;
        if let Some(identity) = &client {
            if let Some(exp) = token_exp(&identity.token) {
                let left = (SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                let now = Instant::now();
                fetched.expires_at = fetched.expires_at.min(now + left);
                fetched.refresh_at = fetched.refresh_at.min(now + left / 2);
            }
        }
        fetched.client = client;
        let previous = server.cached();
        if previous
            .as_ref()
            .is_none_or(|p| p.config.public_key != fetched.config.public_key)
        {
            info!(url = %server.url, public_key = %hex::encode(fetched.config.public_key), "using egress key");
        }
        let result = fetched.clone();
        *server.current.write().unwrap_or_else(|e| e.into_inner()) = Some(fetched);
        Ok(result)
    }

    pub fn status_json(&self) -> serde_json::Value {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let list: Vec<_> = servers
            .values()
            .map(|s| {
                let mut entry = serde_json::json!({ "url": s.url });
                if let Some(cached) = s.cached() {
                    entry["server_public_key"] = hex::encode(cached.config.public_key).into();
                    if let Some(token) = &cached.attestation {
                        entry["server_attestation"] = token.clone().into();
                    }
                }
                entry
            })
            .collect();
        serde_json::json!({ "servers": list })
    }
}

impl Server {
    fn cached(&self) -> Option<CachedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One key-config exchange with an egress, as the ingress performs it: the response body as
/// received, what it parsed to, the challenge that was sent (background check) and, when
/// verifying, the attestation result that vouches for the key. `tng tools ohttp dump` shows
/// and saves exactly this.
pub struct KeyConfigExchange {
    pub raw: Bytes,
    pub response: KeyConfigResponse,
    pub challenge: Option<String>,
    pub token: Option<tng_attest::VerifiedToken>,
}

/// Fetches the key config from `url` and, with a verifier, checks the egress's attestation
/// against it. Any attestation failure is an error: no key comes back unverified.
pub async fn exchange_key_config(
    client: &HttpClient,
    url: &str,
    verifier: Option<&tng_attest::Verifier>,
) -> Result<KeyConfigExchange, TngError> {
    let unusable = |message: String| unusable_key_config(url, message);
    // Background check: the challenge comes from our own Attestation Service, so the evidence
    // the egress returns is fresh and bound to this very exchange.
    let challenge = match verifier {
        Some(v) if v.model() == tng_attest::Model::BackgroundCheck => {
            Some(v.challenge().await.map_err(attestation_error)?)
        }
        _ => None,
    };
    let attestation_request = verifier.map(|_| match &challenge {
        Some(token) => AttestationRequest::BackgroundCheck {
            challenge_token: token.clone(),
        },
        None => AttestationRequest::Passport,
    });
    let body = serde_json::to_vec(&KeyConfigRequest {
        attestation_request,
    })
    .map_err(|e| unusable(e.to_string()))?;
    let request = Request::post(url)
        .header(API_HEADER, OhttpApi::KeyConfig.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
        .body(full(Bytes::from(body)))
        .map_err(|e| unusable(e.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| unusable(crate::http::client::describe_client_error(&e)))?;
    let status = response.status();
    let bytes = read_small(response.into_body(), MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| unusable(format!("reading the key config failed: {e}")))?;
    if !status.is_success() {
        let detail = String::from_utf8_lossy(&bytes);
        // The egress could not attest (AA failure, model mismatch): a verdict about the server.
        let attestation_failed = verifier.is_some()
            && serde_json::from_slice::<ErrorBody>(&bytes)
                .is_ok_and(|e| e.code == "GenServerHpkeConfigurationResponseFailed");
        if attestation_failed {
            return Err(TngError::new(
                StatusCode::BAD_GATEWAY,
                "ServerAttestationFailed",
                format!("server attestation failed: the egress could not attest: {detail}"),
            ));
        }
        return Err(unusable(format!("egress answered {status}: {detail}")));
    }
    let parsed: KeyConfigResponse = serde_json::from_slice(&bytes)
        .map_err(|e| unusable(format!("invalid key config response: {e}")))?;
    let token = match verifier {
        Some(v) => Some(verify_server(v, challenge.as_deref(), &parsed, url).await?),
        None => None,
    };
    Ok(KeyConfigExchange {
        raw: bytes,
        response: parsed,
        challenge,
        token,
    })
}

fn unusable_key_config(url: &str, message: String) -> TngError {
    TngError::new(
        StatusCode::BAD_GATEWAY,
        "CreateOHttpClientFailed",
        format!("cannot get the OHTTP key config from {url}: {message}"),
    )
}

async fn fetch_key_config(
    client: &HttpClient,
    url: &str,
    verifier: Option<&tng_attest::Verifier>,
    refresh_interval: Duration,
) -> Result<CachedKey, TngError> {
    let unusable = |message: String| unusable_key_config(url, message);
    let KeyConfigExchange {
        response: parsed,
        token,
        ..
    } = exchange_key_config(client, url, verifier).await?;
    let configs = parsed
        .hpke_key_config
        .decode()
        .map_err(|e| unusable(format!("invalid key config list: {e}")))?;
    let config = configs
        .into_iter()
        .next()
        .ok_or_else(|| unusable("the egress offered no key this ingress supports".into()))?;
    let now_wall = SystemTime::now();
    let mut expire =
        SystemTime::UNIX_EPOCH + Duration::from_secs(parsed.hpke_key_config.expire_timestamp);
    if let Some(token) = &token {
        // The key is only as trustworthy as the attestation vouching for it.
        expire = expire.min(SystemTime::UNIX_EPOCH + Duration::from_secs(token.exp));
    }
    let remaining = expire.duration_since(now_wall).unwrap_or(Duration::ZERO);
    if remaining.is_zero() {
        return Err(unusable(
            "the egress offered a key (or attestation) that has already expired".into(),
        ));
    }
    let now = Instant::now();
    // Refresh half-way to expiry: with rotating keys the egress advertises a new key well
    // before it stops accepting the old one, so this never uses a key past its acceptance.
    let refresh_in = (remaining / 2).min(refresh_interval);
    Ok(CachedKey {
        config: Arc::new(config),
        refresh_at: now + refresh_in,
        expires_at: now + remaining,
        attestation: token.map(|t| t.token),
        client: None,
    })
}

/// Checks the egress's attestation against the key config it came with. Any failure means the
/// key is not used: no request is ever sealed to an unverified server.
pub async fn verify_server(
    verifier: &tng_attest::Verifier,
    challenge: Option<&str>,
    response: &KeyConfigResponse,
    url: &str,
) -> Result<tng_attest::VerifiedToken, TngError> {
    let failed = |reason: String| {
        TngError::new(
            StatusCode::BAD_GATEWAY,
            "ServerAttestationFailed",
            format!("server attestation failed: {reason}"),
        )
    };
    let key_config =
        serde_json::to_value(&response.hpke_key_config).map_err(|e| failed(e.to_string()))?;
    let verified = match (&response.attestation_info, challenge) {
        (Some(AttestationInfo::BackgroundCheck { evidence, .. }), Some(challenge)) => {
            let evidence: tng_attest::CocoEvidence = serde_json::from_value(evidence.clone())
                .map_err(|e| failed(format!("the egress sent malformed evidence: {e}")))?;
            let expected = tng_attest::claims::server_claims(Some(challenge), key_config);
            verifier
                .appraise(&evidence, &expected)
                .await
                .map_err(attestation_error)?
        }
        (
            Some(AttestationInfo::Passport {
                attestation_result, ..
            }),
            None,
        ) => {
            let expected = tng_attest::claims::server_claims(None, key_config);
            verifier
                .verify(attestation_result, &expected)
                .map_err(attestation_error)?
        }
        (None, _) => {
            return Err(failed(
                "the egress sent no attestation (attestation_info is null; does it have `attest`?)"
                    .into(),
            ))
        }
        (Some(AttestationInfo::Passport { .. }), Some(_)) => return Err(failed(
            "model mismatch: background-check evidence expected, the egress sent a passport token"
                .into(),
        )),
        (Some(AttestationInfo::BackgroundCheck { .. }), None) => return Err(failed(
            "model mismatch: a passport token expected, the egress sent background-check evidence"
                .into(),
        )),
    };
    let status = verified
        .claims
        .get("submods")
        .and_then(|s| s.as_object())
        .map(|submods| {
            submods
                .iter()
                .map(|(name, m)| {
                    format!(
                        "{name}={}",
                        m.get("ear.status").and_then(|v| v.as_str()).unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    info!(%url, ear_status = %status, policy_ids = ?verified.policy_ids, exp = verified.exp, "server attestation verified");
    Ok(verified)
}

/// An unreachable Attestation Service is a temporary condition (503); everything else is a
/// verdict about the server (502).
fn attestation_error(err: tng_attest::Error) -> TngError {
    if matches!(
        err,
        tng_attest::Error::As(tng_attest::AsError::Unreachable { .. })
    ) {
        return TngError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "AttestationServiceUnavailable",
            format!("server attestation failed: {err}"),
        );
    }
    TngError::new(
        StatusCode::BAD_GATEWAY,
        "ServerAttestationFailed",
        format!("server attestation failed: {err}"),
    )
}

/// Gets this ingress attested with a fresh sender key: evidence bound to `{challenge_token?,
/// pk_s}`, converted by the egress's Attestation Service (background check, through the
/// egress's relay endpoints) or by our own (passport).
async fn client_identity(
    client: &HttpClient,
    url: &str,
    attester: &tng_attest::Attester,
) -> Result<ClientIdentity, TngError> {
    use base64::Engine as _;
    let failed = |reason: String| {
        TngError::new(
            StatusCode::BAD_GATEWAY,
            "ClientAttestationFailed",
            format!("client attestation failed: {reason}"),
        )
    };
    let key = SenderKey::generate();
    let pk_s = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    let token = match attester.model() {
        tng_attest::Model::Passport => {
            let claims = tng_attest::claims::client_claims(None, &pk_s);
            attester
                .passport_token(&claims)
                .await
                .map_err(|e| failed(e.to_string()))?
        }
        tng_attest::Model::BackgroundCheck => {
            let challenge: ChallengeResponse =
                relay(client, url, OhttpApi::BackgroundCheckChallenge, None)
                    .await
                    .map_err(failed)?;
            let claims = tng_attest::claims::client_claims(Some(&challenge.challenge_token), &pk_s);
            let evidence = attester
                .evidence(&claims)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let request = VerifyRequest {
                evidence: serde_json::to_value(&evidence).map_err(|e| failed(e.to_string()))?,
                aa_provider: Some("coco".into()),
            };
            let body = serde_json::to_vec(&request).map_err(|e| failed(e.to_string()))?;
            let verified: VerifyResponse =
                relay(client, url, OhttpApi::BackgroundCheckVerify, Some(body))
                    .await
                    .map_err(failed)?;
            verified.attestation_result
        }
    };
    info!(%url, public_key = %hex::encode(key.public_key()), "client attestation token obtained");
    Ok(ClientIdentity { key, token })
}

/// Calls one of the egress's background-check relay endpoints (same URL, other API header).
async fn relay<T: serde::de::DeserializeOwned>(
    client: &HttpClient,
    url: &str,
    api: OhttpApi,
    body: Option<Vec<u8>>,
) -> Result<T, String> {
    let builder = match &body {
        Some(_) => Request::post(url).header(header::CONTENT_TYPE, "application/json"),
        None => Request::get(url),
    };
    let request = builder
        .header(API_HEADER, api.as_str())
        .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
        .body(
            body.map(|b| full(Bytes::from(b)))
                .unwrap_or_else(crate::http::body::empty),
        )
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| crate::http::client::describe_client_error(&e))?;
    let status = response.status();
    let bytes = read_small(response.into_body(), MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "the egress answered {} {status}: {}",
            api.as_str(),
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid {} response: {e}", api.as_str()))
}

/// `exp` of our own token, read without verification (the egress verifies it): it bounds how
/// long the identity is used.
fn token_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}
