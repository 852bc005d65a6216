//! The ingress's view of each egress, cached by egress identity: the endpoint the outer
//! connection goes to (scheme and authority) and the key configuration's public key. A rewritten
//! outer path does not make a new egress: every path of one endpoint uses the key last fetched
//! there until the egress behind that path refuses it (422), and only then is the key fetched
//! (and attested) through that path. So with `path_rewrites` producing thousands of prefixes
//! the ingress still fetches and attests once per egress key, and everything is bounded:
//! endpoints, keys per endpoint, remembered paths per endpoint.
//!
//! Fetches are single-flight per outer URL, run in their own task under a deadline, and their
//! outcome (key or error) answers every request waiting for it at once. A failure is remembered
//! for a short, growing while (back-off) so a hanging or failing egress or Attestation Service
//! costs one attempt at a time, not one per request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use tng_ohttp::api::{
    AttestationInfo, AttestationRequest, ChallengeResponse, ErrorBody, KeyConfigRequest,
    KeyConfigResponse, OhttpApi, VerifyRequest, VerifyResponse, API_HEADER,
};
use tng_ohttp::keys::KeyConfig;
use tng_ohttp::keys::SenderKey;
use tng_telemetry::{Attestation, AttestationFailure, InstanceMetrics};
use tracing::{info, warn};

use crate::error::TngError;
use crate::http::body::{full, read_small};
use crate::http::client::HttpClient;

/// Upstream refreshes at least this often even when the egress advertises a later expiry
/// (unless this ingress attests: then its `attest.refresh_interval` sets the pace).
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
pub const USER_AGENT: &str = concat!("tng/", env!("CARGO_PKG_VERSION"));

/// Longest a key fetch (our own attestation, the key config, the egress's attestation) may
/// take; `limits.response_timeout` shortens it.
pub const KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Endpoints (scheme + authority) remembered; the least recently used one is forgotten.
pub const MAX_ENDPOINTS: usize = 256;
/// Keys remembered per endpoint (one per egress key an L7 gateway routes paths to).
pub const MAX_KEYS_PER_ENDPOINT: usize = 8;
/// Outer paths per endpoint whose key is remembered; other paths use the newest key.
pub const MAX_PATHS_PER_ENDPOINT: usize = 1024;
/// How long a failed fetch answers for the next ones: doubles per failure in a row.
pub const FAILURE_BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(5);

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

type Flight = Shared<BoxFuture<'static, Result<CachedKey, TngError>>>;

/// A small map that forgets its least recently used entry beyond `cap`. Eviction scans the
/// map, which is fine at these sizes (it only happens when a new entry arrives at the cap).
struct Bounded<K, V> {
    cap: usize,
    tick: u64,
    map: HashMap<K, (u64, V)>,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            tick: 0,
            map: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|(used, v)| {
            *used = tick;
            &*v
        })
    }

    fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(key, (self.tick, value));
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(_, v)| v)
    }
}

/// What the egress behind one outer path last said about our keys.
#[derive(Clone, Copy)]
enum PathKey {
    /// It accepts this key.
    Accepts([u8; 32]),
    /// It refused the key it was sent (422): fetch through this path before sending again.
    Refused,
}

struct Failure {
    error: TngError,
    until: Instant,
    streak: u32,
}

struct EndpointState {
    /// Newest first.
    keys: Vec<CachedKey>,
    paths: Bounded<String, PathKey>,
    /// Fetches in flight, by outer URL (removed when they finish, so bounded by concurrency).
    flights: HashMap<String, Flight>,
    failures: Bounded<String, Failure>,
}

/// One egress endpoint: scheme and authority of the outer connection.
pub struct Endpoint {
    pub origin: String,
    state: Mutex<EndpointState>,
}

/// The egress a request goes to: its endpoint and the outer URL (with the rewritten path).
pub struct Server {
    pub url: String,
    endpoint: Arc<Endpoint>,
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
    /// Deadline of one fetch, attestation included.
    deadline: Duration,
    endpoints: Mutex<Bounded<String, Arc<Endpoint>>>,
    /// The instance's metrics: verifications of the egresses' attestation are counted here.
    metrics: InstanceMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `scheme://authority/` of an outer URL.
fn origin_of(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}/",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        ),
        Err(_) => url.to_string(),
    }
}

impl KeyCache {
    pub fn new(
        client: HttpClient,
        verifier: Option<Arc<tng_attest::Verifier>>,
        attester: Option<Arc<tng_attest::Attester>>,
        response_timeout: Option<Duration>,
        metrics: InstanceMetrics,
    ) -> Self {
        let refresh_interval = attester
            .as_ref()
            .map_or(DEFAULT_REFRESH_INTERVAL, |a| a.refresh_interval());
        Self {
            client,
            verifier,
            attester,
            refresh_interval,
            deadline: response_timeout.map_or(KEY_FETCH_TIMEOUT, |t| t.min(KEY_FETCH_TIMEOUT)),
            endpoints: Mutex::new(Bounded::new(MAX_ENDPOINTS)),
            metrics,
        }
    }

    /// Whether the egresses' attestation is verified before any request is sealed to them.
    pub fn verifies(&self) -> bool {
        self.verifier.is_some()
    }

    pub fn server(&self, url: &str) -> Server {
        let origin = origin_of(url);
        let mut endpoints = lock(&self.endpoints);
        let endpoint = match endpoints.get(&origin) {
            Some(endpoint) => endpoint.clone(),
            None => {
                let endpoint = Arc::new(Endpoint {
                    origin: origin.clone(),
                    state: Mutex::new(EndpointState {
                        keys: Vec::new(),
                        paths: Bounded::new(MAX_PATHS_PER_ENDPOINT),
                        flights: HashMap::new(),
                        failures: Bounded::new(MAX_PATHS_PER_ENDPOINT),
                    }),
                });
                endpoints.insert(origin, endpoint.clone());
                endpoint
            }
        };
        Server {
            url: url.to_string(),
            endpoint,
        }
    }

    /// The key to encrypt to, fetching or refreshing it as needed.
    pub async fn key(self: &Arc<Self>, server: &Server) -> Result<CachedKey, TngError> {
        if self.refresh_interval.is_zero() {
            // `refresh_interval: 0`: no reuse at all, as upstream.
            return self.fetch_within_deadline(&server.url).await;
        }
        let now = Instant::now();
        let flight = {
            let mut state = lock(&server.endpoint.state);
            if let Some(cached) = state.pick(&server.url, now) {
                let refreshing = state.flights.contains_key(&server.url)
                    || state.backing_off(&server.url, now).is_some();
                if now >= cached.refresh_at && !refreshing {
                    // Still valid: answer now, refresh in the background (once); nobody waits.
                    drop(self.start_flight(&mut state, server, true));
                }
                return Ok(cached);
            }
            if let Some(err) = state.backing_off(&server.url, now) {
                return Err(err);
            }
            match state.flights.get(&server.url) {
                Some(flight) => flight.clone(),
                None => self.start_flight(&mut state, server, false),
            }
        };
        flight.await
    }

    /// Runs one fetch in its own task (so a client that gives up does not cancel it for the
    /// others) and records its outcome before any waiter sees it.
    fn start_flight(
        self: &Arc<Self>,
        state: &mut EndpointState,
        server: &Server,
        background: bool,
    ) -> Flight {
        let cache = self.clone();
        let endpoint = server.endpoint.clone();
        let url = server.url.clone();
        let task = tokio::spawn(async move {
            let result = cache.fetch_within_deadline(&url).await;
            endpoint.finish(&url, &result, background);
            result
        });
        let flight = async move {
            task.await.unwrap_or_else(|err| {
                Err(TngError::new(
                    StatusCode::BAD_GATEWAY,
                    "CreateOHttpClientFailed",
                    format!("the key config fetch failed: {err}"),
                ))
            })
        }
        .boxed()
        .shared();
        state.flights.insert(server.url.clone(), flight.clone());
        flight
    }

    async fn fetch_within_deadline(&self, url: &str) -> Result<CachedKey, TngError> {
        match tokio::time::timeout(self.deadline, self.fetch(url)).await {
            Ok(result) => result,
            Err(_) => Err(TngError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "KeyConfigTimeout",
                format!(
                    "no usable key configuration from {url} within {}s (key-config fetch and \
                     attestation; limits.response_timeout)",
                    self.deadline.as_secs_f64()
                ),
            )),
        }
    }

    /// The egress behind `server` refused `config` (422): the next request through this path
    /// fetches first. A key this path had accepted before is dropped for the whole endpoint
    /// (that egress rotated it away); a key it was only tried with stays for other paths.
    pub fn invalidate(&self, server: &Server, config: &KeyConfig) {
        let mut state = lock(&server.endpoint.state);
        let pk = config.public_key;
        if let Some(PathKey::Accepts(accepted)) = state.paths.get(&server.url).copied() {
            if accepted == pk {
                state.keys.retain(|k| k.config.public_key != pk);
            }
        }
        state.paths.insert(server.url.clone(), PathKey::Refused);
    }

    async fn fetch(&self, url: &str) -> Result<CachedKey, TngError> {
        // Upstream's order: our own attestation first, then the server's key config.
        let client = match &self.attester {
            Some(attester) => Some(Arc::new(
                client_identity(&self.client, url, attester).await?,
            )),
            None => None,
        };
        let mut fetched = fetch_key_config(
            &self.client,
            url,
            self.verifier.as_deref(),
            self.refresh_interval,
            Some(&self.metrics),
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
        Ok(fetched)
    }

    pub fn status_json(&self) -> serde_json::Value {
        let endpoints = lock(&self.endpoints);
        let list: Vec<_> = endpoints
            .values()
            .map(|e| {
                let state = lock(&e.state);
                let mut entry = serde_json::json!({
                    "url": e.origin,
                    "paths": state.paths.len(),
                    "keys": state.keys.iter().map(|k| hex::encode(k.config.public_key)).collect::<Vec<_>>(),
                });
                if let Some(newest) = state.keys.first() {
                    entry["server_public_key"] = hex::encode(newest.config.public_key).into();
                    if let Some(token) = &newest.attestation {
                        entry["server_attestation"] = token.clone().into();
                    }
                }
                entry
            })
            .collect();
        serde_json::json!({ "servers": list })
    }
}

impl EndpointState {
    /// The key for `url`: the one its egress accepts, else the endpoint's newest; none when
    /// that egress refused the key we have (or nothing is cached).
    fn pick(&mut self, url: &str, now: Instant) -> Option<CachedKey> {
        let usable = |k: &&CachedKey| now < k.expires_at;
        match self.paths.get(&url.to_string()).copied() {
            Some(PathKey::Refused) => None,
            Some(PathKey::Accepts(pk)) => self
                .keys
                .iter()
                .filter(usable)
                .find(|k| k.config.public_key == pk)
                .or_else(|| self.keys.iter().find(usable))
                .cloned(),
            None => self.keys.iter().find(usable).cloned(),
        }
    }

    fn backing_off(&mut self, url: &str, now: Instant) -> Option<TngError> {
        self.failures
            .get(&url.to_string())
            .filter(|f| now < f.until)
            .map(|f| f.error.clone())
    }
}

impl Endpoint {
    fn finish(&self, url: &str, result: &Result<CachedKey, TngError>, background: bool) {
        let mut state = lock(&self.state);
        state.flights.remove(url);
        match result {
            Ok(fetched) => {
                state.failures.remove(&url.to_string());
                let pk = fetched.config.public_key;
                let known = state.keys.iter().any(|k| k.config.public_key == pk);
                state.keys.retain(|k| k.config.public_key != pk);
                state.keys.insert(0, fetched.clone());
                state.keys.truncate(MAX_KEYS_PER_ENDPOINT);
                state.paths.insert(url.to_string(), PathKey::Accepts(pk));
                if !known {
                    info!(%url, public_key = %hex::encode(pk), "using egress key");
                }
            }
            Err(err) => {
                let streak = state
                    .failures
                    .get(&url.to_string())
                    .map_or(0, |f| f.streak)
                    .saturating_add(1);
                let backoff = FAILURE_BACKOFF_MIN
                    .saturating_mul(1 << (streak - 1).min(8))
                    .min(FAILURE_BACKOFF_MAX);
                state.failures.insert(
                    url.to_string(),
                    Failure {
                        error: err.clone(),
                        until: Instant::now() + backoff,
                        streak,
                    },
                );
                if background {
                    warn!(%url, "key config refresh failed, keeping the current key: {err}");
                }
            }
        }
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
    metrics: Option<&InstanceMetrics>,
) -> Result<KeyConfigExchange, TngError> {
    let count_failure = |reason: AttestationFailure| {
        if let Some(metrics) = metrics {
            metrics.attestation(Attestation::Failed(reason));
        }
    };
    let unusable = |message: String| unusable_key_config(url, message);
    // Background check: the challenge comes from our own Attestation Service, so the evidence
    // the egress returns is fresh and bound to this very exchange.
    let challenge = match verifier {
        Some(v) if v.model() == tng_attest::Model::BackgroundCheck => {
            Some(v.challenge().await.map_err(|err| {
                count_failure(crate::attestation::failure_of(&err));
                attestation_error(err)
            })?)
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
        // Only the egress's error code is passed on (see `pipeline::egress_refused`).
        let code = serde_json::from_slice::<ErrorBody>(&bytes)
            .ok()
            .map(|e| e.code)
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
        let detail = format!(
            "egress body: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(1024)])
        );
        let answered = match &code {
            Some(code) => format!("egress answered {status} ({code})"),
            None => format!("egress answered {status}"),
        };
        // The egress could not attest (AA failure, model mismatch): a verdict about the server.
        if verifier.is_some() && code.as_deref() == Some("GenServerHpkeConfigurationResponseFailed")
        {
            count_failure(AttestationFailure::Other);
            return Err(TngError::new(
                StatusCode::BAD_GATEWAY,
                "ServerAttestationFailed",
                format!("server attestation failed: the egress could not attest: {answered}"),
            )
            .with_detail(detail));
        }
        return Err(unusable(answered).with_detail(detail));
    }
    let parsed: KeyConfigResponse = serde_json::from_slice(&bytes)
        .map_err(|e| unusable(format!("invalid key config response: {e}")))?;
    let token = match verifier {
        Some(v) => {
            Some(verify_server_counted(v, challenge.as_deref(), &parsed, url, metrics).await?)
        }
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
    metrics: Option<&InstanceMetrics>,
) -> Result<CachedKey, TngError> {
    let unusable = |message: String| unusable_key_config(url, message);
    let KeyConfigExchange {
        response: parsed,
        token,
        ..
    } = exchange_key_config(client, url, verifier, metrics).await?;
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
    verify_server_counted(verifier, challenge, response, url, None).await
}

/// [`verify_server`], counting the outcome in `metrics`.
async fn verify_server_counted(
    verifier: &tng_attest::Verifier,
    challenge: Option<&str>,
    response: &KeyConfigResponse,
    url: &str,
    metrics: Option<&InstanceMetrics>,
) -> Result<tng_attest::VerifiedToken, TngError> {
    let result = check_server(verifier, challenge, response, url).await;
    if let Some(metrics) = metrics {
        metrics.attestation(match &result {
            Ok(_) => Attestation::Verified,
            Err((reason, _)) => Attestation::Failed(*reason),
        });
    }
    result.map_err(|(_, err)| err)
}

async fn check_server(
    verifier: &tng_attest::Verifier,
    challenge: Option<&str>,
    response: &KeyConfigResponse,
    url: &str,
) -> Result<tng_attest::VerifiedToken, (AttestationFailure, TngError)> {
    let failed = |reason: String| {
        (
            AttestationFailure::InvalidEvidence,
            TngError::new(
                StatusCode::BAD_GATEWAY,
                "ServerAttestationFailed",
                format!("server attestation failed: {reason}"),
            ),
        )
    };
    let refused =
        |err: tng_attest::Error| (crate::attestation::failure_of(&err), attestation_error(err));
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
                .map_err(refused)?
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
                .map_err(refused)?
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
    let status = verified.ear_status();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_forgets_the_least_recently_used() {
        let mut b = Bounded::new(2);
        b.insert("a", 1);
        b.insert("b", 2);
        assert_eq!(b.get(&"a"), Some(&1));
        b.insert("c", 3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(&"b"), None, "b was used least recently");
        assert_eq!(b.get(&"a"), Some(&1));
        assert_eq!(b.get(&"c"), Some(&3));
        b.insert("a", 4);
        assert_eq!(b.len(), 2);
        assert_eq!(b.remove(&"a"), Some(4));
    }

    #[test]
    fn origin_is_scheme_and_authority() {
        assert_eq!(origin_of("http://gw:8080/foo/bar"), "http://gw:8080/");
        assert_eq!(origin_of("https://[::1]:1/"), "https://[::1]:1/");
    }
}
