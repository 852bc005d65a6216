//! The product side of remote attestation for TNG, with no knowledge of the tunnel:
//!
//! - [`claims`]: runtime-data claims → RFC 8785 canonical JSON → SHA-384 (the AA's
//!   `RuntimeData`), and the [`CocoEvidence`] wrapper sent to peers;
//! - [`aa`]: evidence from the Attestation Agent (ttrpc over a unix socket, or its ASR proxy);
//! - [`as_client`]: the RESTful Attestation Service (`/challenge`, `/attestation`,
//!   `/certificate`);
//! - [`verify`]: attestation-token verification;
//! - [`Attester`] and [`Verifier`]: the façade the gateway uses, built from the `attest` and
//!   `verify` objects of the configuration.
#![forbid(unsafe_code)]

pub mod aa;
pub mod as_client;
pub mod claims;
mod http;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use aa::{AaClient, AaError, AsrClient, EvidenceSource};
pub use as_client::{AsClient, AsError, DUMMY_NONCE};
pub use claims::{Claims, CocoEvidence, EvidenceFormatError};
pub use tng_config::{AaProvider, Model};
pub use verify::{TokenProfile, TokenVerifier, Trust, TrustAnchors, VerifiedToken, VerifyError};

/// Any attestation failure. The message says which step or check failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Aa(#[from] AaError),
    #[error(transparent)]
    As(#[from] AsError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Evidence(#[from] EvidenceFormatError),
    #[error("attestation configuration: {0}")]
    Config(String),
    #[error("no trust source for attestation tokens: set as_addr or trusted_certs_paths, or skip_as_token_cert_verify")]
    NoTrustSource,
    #[error("cannot load trusted certificate: {0}")]
    TrustedCertificate(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The attesting side (`attest`): produces evidence bound to claims, and in the passport model
/// converts it to a token with its own Attestation Service.
#[derive(Debug)]
pub struct Attester {
    model: Model,
    refresh_interval: Duration,
    source: EvidenceSource,
    as_client: Option<AsClient>,
    policy_ids: Vec<String>,
}

impl Attester {
    /// Builds the attester from the `attest` object; `so_mark` marks every socket it opens to
    /// the Attestation Service (and the ASR). No connection is made yet.
    pub fn new(config: &tng_config::Attest, so_mark: Option<u32>) -> Result<Self> {
        let source = match config.aa_provider {
            AaProvider::Coco => EvidenceSource::Ttrpc(AaClient::new(&config.aa_addr)?),
            AaProvider::CocoAsr => {
                let asr_addr = config
                    .asr_addr
                    .as_deref()
                    .ok_or_else(|| Error::Config("aa_provider coco_asr needs asr_addr".into()))?;
                EvidenceSource::Asr(Box::new(AsrClient::new(asr_addr, so_mark)?))
            }
        };
        let as_client = config
            .as_addr
            .as_deref()
            .map(|addr| AsClient::new(addr, &config.as_headers, so_mark))
            .transpose()?;
        if config.model == Model::Passport && as_client.is_none() {
            return Err(Error::Config("the passport model needs as_addr".into()));
        }
        Ok(Self {
            model: config.model,
            refresh_interval: config.refresh_interval,
            source,
            as_client,
            policy_ids: config.policy_ids.clone(),
        })
    }

    /// Builds an attester from parts (tests, tools).
    pub fn from_parts(
        model: Model,
        refresh_interval: Duration,
        source: EvidenceSource,
        as_client: Option<AsClient>,
        policy_ids: Vec<String>,
    ) -> Self {
        Self {
            model,
            refresh_interval,
            source,
            as_client,
            policy_ids,
        }
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// `attest.refresh_interval` (`0` = regenerate on every use).
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    pub fn source(&self) -> &EvidenceSource {
        &self.source
    }

    /// Evidence bound to `claims` (`GetEvidence`, `GetTeeType`, `GetAdditionalEvidence`).
    pub async fn evidence(&self, claims: &Claims) -> Result<CocoEvidence> {
        Ok(self.source.evidence(claims).await?)
    }

    /// A challenge from this attester's own Attestation Service (passport model).
    pub async fn challenge(&self) -> Result<String> {
        Ok(self.as_client()?.challenge().await?)
    }

    /// Passport model: fetches a challenge from the own Attestation Service, adds it to
    /// `claims` as `challenge_token`, gets evidence for the result and converts it to a token
    /// with the configured `policy_ids`.
    pub async fn passport_token(&self, claims: &Claims) -> Result<String> {
        let as_client = self.as_client()?;
        let challenge = as_client.challenge().await?;
        let mut claims = claims.clone();
        claims.insert(
            "challenge_token".into(),
            serde_json::Value::String(challenge),
        );
        let evidence = self.source.evidence(&claims).await?;
        Ok(as_client.attestation(&evidence, &self.policy_ids).await?)
    }

    /// Converts `evidence` to a token at the own Attestation Service, without a challenge:
    /// for evidence bound to something the peer checks itself (a rats-TLS certificate key;
    /// upstream makes no `/challenge` call there either).
    pub async fn convert(&self, evidence: &CocoEvidence) -> Result<String> {
        Ok(self
            .as_client()?
            .attestation(evidence, &self.policy_ids)
            .await?)
    }

    fn as_client(&self) -> Result<&AsClient> {
        self.as_client
            .as_ref()
            .ok_or_else(|| Error::Config("attest has no as_addr".into()))
    }
}

/// The verifying side (`verify`): challenges and converts evidence with the Attestation Service
/// (background check) and verifies tokens.
#[derive(Debug)]
pub struct Verifier {
    model: Model,
    as_client: Option<AsClient>,
    trusted_certs_paths: Vec<PathBuf>,
    skip_cert_verify: bool,
    token_verifier: RwLock<Arc<TokenVerifier>>,
}

impl Verifier {
    /// Builds the verifier from the `verify` object and loads its trust anchors
    /// (`GET {as_addr}/certificate` and/or `trusted_certs_paths`; none when skipping). A
    /// failure here should abort startup, as upstream does.
    pub async fn new(config: &tng_config::Verify, so_mark: Option<u32>) -> Result<Self> {
        let mut verifier = Self::without_trust(config, so_mark)?;
        let trust = verifier.load_trust().await?;
        verifier.token_verifier = RwLock::new(Arc::new(TokenVerifier::new(
            trust,
            config.policy_ids.clone(),
        )));
        Ok(verifier)
    }

    /// Like [`new`](Self::new) but with the given trust (no certificate fetch).
    pub fn with_trust(
        config: &tng_config::Verify,
        so_mark: Option<u32>,
        trust: Trust,
    ) -> Result<Self> {
        let verifier = Self::without_trust(config, so_mark)?;
        *verifier.write_verifier() = Arc::new(TokenVerifier::new(trust, config.policy_ids.clone()));
        Ok(verifier)
    }

    fn without_trust(config: &tng_config::Verify, so_mark: Option<u32>) -> Result<Self> {
        if config.verify_signer_transparency {
            // Refuse rather than silently skip a check the operator asked for.
            return Err(Error::Config(
                "verify_signer_transparency is not supported by this implementation".into(),
            ));
        }
        let as_client = config
            .as_addr
            .as_deref()
            .map(|addr| AsClient::new(addr, &config.as_headers, so_mark))
            .transpose()?;
        if config.model == Model::BackgroundCheck && as_client.is_none() {
            return Err(Error::Config(
                "the background-check model needs as_addr".into(),
            ));
        }
        Ok(Self {
            model: config.model,
            as_client,
            trusted_certs_paths: config.trusted_certs_paths.clone().unwrap_or_default(),
            skip_cert_verify: config.skip_as_token_cert_verify,
            token_verifier: RwLock::new(Arc::new(TokenVerifier::new(
                Trust::Anchors(TrustAnchors::from_certs(Vec::new())?),
                config.policy_ids.clone(),
            ))),
        })
    }

    async fn load_trust(&self) -> Result<Trust> {
        if self.skip_cert_verify {
            return Ok(Trust::Skip);
        }
        let mut certs = Vec::new();
        if let Some(as_client) = &self.as_client {
            certs.extend(as_client.certificates().await?);
        }
        for path in &self.trusted_certs_paths {
            certs.push(
                verify::anchors::first_pem_certificate(path).map_err(Error::TrustedCertificate)?,
            );
        }
        if certs.is_empty() {
            return Err(Error::NoTrustSource);
        }
        Ok(Trust::Anchors(TrustAnchors::from_certs(certs)?))
    }

    /// Re-reads the trust anchors (e.g. after the Attestation Service rotated its signer).
    /// On failure the previous anchors stay in use.
    pub async fn refresh_trust_anchors(&self) -> Result<()> {
        let trust = self.load_trust().await?;
        let policy_ids = self.current().policy_ids().to_vec();
        *self.write_verifier() = Arc::new(TokenVerifier::new(trust, policy_ids));
        Ok(())
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// The token verifier in use.
    pub fn current(&self) -> Arc<TokenVerifier> {
        match self.token_verifier.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn write_verifier(&self) -> std::sync::RwLockWriteGuard<'_, Arc<TokenVerifier>> {
        match self.token_verifier.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A challenge token from the Attestation Service (`POST /challenge`).
    pub async fn challenge(&self) -> Result<String> {
        Ok(self.as_client()?.challenge().await?)
    }

    /// Background check: evidence → token (`POST /attestation` with `policy_ids`).
    pub async fn convert(&self, evidence: &CocoEvidence) -> Result<String> {
        let policy_ids = self.current().policy_ids().to_vec();
        Ok(self.as_client()?.attestation(evidence, &policy_ids).await?)
    }

    /// Verifies `token`; `expected` are the runtime-data claims it must echo (background
    /// check: `{challenge_token, hpke_key_config}`; passport: `{hpke_key_config}`).
    pub fn verify(&self, token: &str, expected: &Claims) -> Result<VerifiedToken> {
        Ok(self.current().verify(token, expected)?)
    }

    /// [`convert`](Self::convert) then [`verify`](Self::verify).
    pub async fn appraise(
        &self,
        evidence: &CocoEvidence,
        expected: &Claims,
    ) -> Result<VerifiedToken> {
        let token = self.convert(evidence).await?;
        self.verify(&token, expected)
    }

    fn as_client(&self) -> Result<&AsClient> {
        self.as_client
            .as_ref()
            .ok_or_else(|| Error::Config("verify has no as_addr".into()))
    }
}
