//! Evidence from the Attestation Agent: over ttrpc on a unix socket (`aa_provider: coco`) or
//! through its ASR HTTP proxy (`aa_provider: coco_asr`), bound to runtime-data claims.

mod asr;
pub mod proto;
// Public only so the fuzz targets (crates/tng-fuzz) can reach the TEE-name parser.
#[doc(hidden)]
pub mod tee;
mod ttrpc_client;

pub use asr::AsrClient;
pub use ttrpc_client::{AaClient, TTRPC_TIMEOUT};

use crate::claims::{canonical_claims, runtime_data_digest, Claims, CocoEvidence};

#[derive(Debug, thiserror::Error)]
pub enum AaError {
    #[error("invalid Attestation Agent address {0:?}")]
    InvalidAddress(String),
    #[error("cannot connect to the Attestation Agent at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("GetEvidenceFromAAFailed: {0}")]
    GetEvidence(String),
    #[error("GetTeeTypeFromAAFailed: {0}")]
    GetTeeType(String),
    #[error("GetAdditionalEvidenceFromAAFailed: {0}")]
    GetAdditionalEvidence(String),
    #[error("the Attestation Agent reports an unknown TEE type {0:?}")]
    UnknownTee(String),
    #[error("Attestation Agent ASR {url}: {reason}")]
    Asr { url: String, reason: String },
}

/// What an evidence source returns before wrapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEvidence {
    pub(crate) tee: String,
    pub(crate) evidence: Vec<u8>,
    pub(crate) additional: Option<Vec<u8>>,
}

/// Where evidence comes from.
#[derive(Debug)]
pub enum EvidenceSource {
    Ttrpc(AaClient),
    Asr(Box<AsrClient>),
}

impl EvidenceSource {
    /// Evidence bound to `claims`: canonical JSON → SHA-384 → `RuntimeData`, wrapped as
    /// [`CocoEvidence`] with the canonical text as `aa_runtime_data`.
    pub async fn evidence(&self, claims: &Claims) -> Result<CocoEvidence, AaError> {
        let canonical = canonical_claims(claims);
        let digest = runtime_data_digest(&canonical);
        let raw = match self {
            EvidenceSource::Ttrpc(client) => client.collect(&digest).await?,
            EvidenceSource::Asr(client) => client.collect(&digest).await?,
        };
        Ok(CocoEvidence::new(
            &raw.tee,
            &raw.evidence,
            raw.additional.as_deref(),
            canonical,
        ))
    }
}
