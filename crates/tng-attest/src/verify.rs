//! Attestation-token verification as upstream TNG does it: the embedded JWK endorsed by its
//! x5c chain to a trust anchor, the signature, `exp`/`nbf`, the EAR profile, the runtime-data
//! binding (subset check), every submodule `affirming`, and the configured policy ids.
//! Each failed check has its own error variant whose message names the check.

pub mod anchors;
// Public only so the fuzz targets (crates/tng-fuzz) can drive the claim checks directly.
#[doc(hidden)]
pub mod appraisal;
mod jws;
mod x5c;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::UnixTime;
use serde_json::{Map, Value};

pub use anchors::TrustAnchors;
pub use appraisal::{TokenProfile, EAR_PROFILE};

use crate::claims::Claims;

/// Clock skew tolerated for `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("invalid trust anchor: {0}")]
    InvalidTrustAnchor(String),
    #[error("token signer is not trusted: no trust anchors are configured")]
    NoTrustAnchors,
    #[error("token header has no embedded jwk (key lookup by kid is not supported)")]
    MissingJwk,
    #[error("token signer is not trusted: the jwk has no x5c certificate chain")]
    MissingX5c,
    #[error("token signer is not trusted: invalid x5c: {0}")]
    InvalidX5c(String),
    #[error("token signer is not trusted: the jwk is not the key of the x5c leaf certificate")]
    JwkCertificateMismatch,
    #[error("token signer is not trusted: {0}")]
    SignerNotTrusted(String),
    #[error("token jwk is invalid: {0}")]
    InvalidJwk(String),
    #[error("token jwk has no alg")]
    MissingJwkAlgorithm,
    #[error("token alg {header} differs from the jwk alg {jwk}")]
    AlgorithmMismatch { header: String, jwk: String },
    #[error("token algorithm {0} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token claims are not a JSON object")]
    ClaimsNotObject,
    #[error("token has no valid exp claim")]
    MissingExpiry,
    #[error("token expired (exp {exp}, now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("token is not yet valid (nbf {nbf}, now {now})")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("token eat_profile {0:?} is not the Trustee EAR profile")]
    UnknownProfile(String),
    #[error("runtime data missing from the token (no JSON object at {0})")]
    RuntimeDataMissing(String),
    #[error("runtime data mismatch: {0}")]
    RuntimeDataMismatch(String),
    #[error("token has no submodules (submods)")]
    NoSubmodules,
    #[error("submodule {name} is malformed: {reason}")]
    MalformedSubmodule { name: String, reason: String },
    #[error("submodule {name} status is {status}")]
    StatusNotAffirming { name: String, status: String },
    #[error("token submodules do not name exactly one appraisal policy id (found {0:?})")]
    AmbiguousPolicyIds(Vec<String>),
    #[error("policy id {0} missing from the token")]
    PolicyIdMissing(String),
}

/// How the signer key of a token is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// `skip_as_token_cert_verify`: the embedded JWK is used as is.
    Skip,
    /// The JWK must be endorsed by an x5c chain to one of these anchors.
    Anchors(TrustAnchors),
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The token text (compact JWS).
    pub token: String,
    /// The JOSE header.
    pub header: Map<String, Value>,
    /// All claims of the payload.
    pub claims: Map<String, Value>,
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    pub profile: TokenProfile,
    /// The runtime-data claims the token echoes (a superset of the expected ones).
    pub runtime_data: Claims,
    /// The appraisal policy ids the token names.
    pub policy_ids: BTreeSet<String>,
}

impl VerifiedToken {
    /// `cpu0=affirming,…`: each EAR submodule's `ear.status` (empty for other profiles), as
    /// the gateways log a verified peer.
    pub fn ear_status(&self) -> String {
        self.claims
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
            .unwrap_or_default()
    }
}

/// Verifies tokens against one trust setting and the configured policy ids.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    trust: Trust,
    policy_ids: Vec<String>,
}

impl TokenVerifier {
    pub fn new(trust: Trust, policy_ids: Vec<String>) -> Self {
        Self { trust, policy_ids }
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn policy_ids(&self) -> &[String] {
        &self.policy_ids
    }

    /// Verifies `token` now; `expected` are the runtime-data claims the token must echo.
    pub fn verify(&self, token: &str, expected: &Claims) -> Result<VerifiedToken, VerifyError> {
        self.verify_at(token, expected, SystemTime::now())
    }

    /// [`verify`](Self::verify) at the time `now` (certificate validity and `exp`/`nbf`).
    pub fn verify_at(
        &self,
        token: &str,
        expected: &Claims,
        now: SystemTime,
    ) -> Result<VerifiedToken, VerifyError> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let jws = jws::parse(token)?;

        // 1. The signer key: the embedded JWK, endorsed unless skipping.
        let jwk = jws.header.jwk.as_ref().ok_or(VerifyError::MissingJwk)?;
        let key = jwk.public_key()?;
        // 2. The JWK's alg selects the algorithm; the header must agree.
        let jwk_alg = jwk.alg.as_deref().ok_or(VerifyError::MissingJwkAlgorithm)?;
        if jws.header.alg != jwk_alg {
            return Err(VerifyError::AlgorithmMismatch {
                header: jws.header.alg.clone(),
                jwk: jwk_alg.to_owned(),
            });
        }
        jws::check_algorithm(jwk_alg, &key)?;
        if let Trust::Anchors(anchors) = &self.trust {
            if anchors.is_empty() {
                return Err(VerifyError::NoTrustAnchors);
            }
            x5c::endorse(jwk, &key, anchors, UnixTime::since_unix_epoch(since_epoch))?;
        }
        // 3. Signature, then the time claims.
        jws::verify_signature(jwk_alg, &key, jws.signing_input.as_bytes(), &jws.signature)?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&jws.payload).map_err(|_| VerifyError::ClaimsNotObject)?;
        let now_s = since_epoch.as_secs();
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(VerifyError::MissingExpiry)?;
        if now_s > exp.saturating_add(LEEWAY.as_secs()) {
            return Err(VerifyError::Expired { exp, now: now_s });
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf
                .as_u64()
                .ok_or_else(|| VerifyError::Malformed("nbf is not a number".into()))?;
            if nbf > now_s.saturating_add(LEEWAY.as_secs()) {
                return Err(VerifyError::NotYetValid { nbf, now: now_s });
            }
        }
        // 4. Profile.
        let profile = appraisal::profile(&claims)?;
        // 5. Runtime-data binding.
        let runtime_data = appraisal::runtime_data(&claims, profile)?;
        appraisal::check_subset(expected, &runtime_data)?;
        // 6. Appraisal status and policy ids.
        let policy_ids = appraisal::policy_ids(&claims, profile)?;
        appraisal::check_policy_ids(&self.policy_ids, &policy_ids)?;

        Ok(VerifiedToken {
            token: token.trim().to_owned(),
            header: jws.header_json,
            claims,
            exp,
            profile,
            runtime_data,
            policy_ids,
        })
    }
}
