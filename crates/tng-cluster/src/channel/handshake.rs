//! The peer channel's messages and its mutual attestation. Each side proves its TEE with
//! evidence whose runtime data holds the TLS session's exporter secret (and the verifier's
//! challenge, in the background-check model), so a proof is valid for this session only.
//!
//! ```text
//! asking node (client)                      holding node (server)
//!   Hello { challenge for the server }  ->
//!                                       <-  Proof { server's proof, challenge for the client }
//!   verifies the server
//!   Proof { client's proof }            ->
//!                                           verifies the client
//!                                       <-  Keys { the key set }  |  Refused { reason }
//! ```

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tng_attest::claims::{Claims, CocoEvidence};
use tng_attest::{Attester, Verifier};
use tng_config::Model;

use crate::key_set::WireKey;

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub node_id: String,
    pub challenge: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ProofMessage {
    pub proof: Option<Proof>,
    pub challenge: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// Background check: the verifier converts the evidence with its Attestation Service.
    Evidence(CocoEvidence),
    /// Passport: a token from the prover's Attestation Service.
    Token(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Keys(Vec<WireKey>),
    Refused(String),
}

/// What this node proves and what it demands of peers (`no_ra`: neither).
#[derive(Clone, Default)]
pub struct PeerAuth {
    pub attester: Option<Arc<Attester>>,
    pub verifier: Option<Arc<Verifier>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("the peer sent no attestation, and this node requires one")]
    Missing,
    #[error("the peer sent {got} but this node's verify model is {want}")]
    WrongModel {
        got: &'static str,
        want: &'static str,
    },
    #[error("{0}")]
    Attest(#[from] tng_attest::Error),
}

impl PeerAuth {
    /// A challenge to send, when this node verifies in the background-check model.
    pub async fn challenge(&self) -> Result<Option<String>, AttestationError> {
        match &self.verifier {
            Some(v) if v.model() == Model::BackgroundCheck => Ok(Some(v.challenge().await?)),
            _ => Ok(None),
        }
    }

    /// This node's proof for the session with `exporter`, answering `challenge`.
    pub async fn prove(
        &self,
        exporter: &[u8],
        challenge: Option<&str>,
    ) -> Result<Option<Proof>, AttestationError> {
        let Some(attester) = &self.attester else {
            return Ok(None);
        };
        let claims = session_claims(exporter, challenge);
        Ok(Some(match attester.model() {
            Model::BackgroundCheck => Proof::Evidence(attester.evidence(&claims).await?),
            Model::Passport => Proof::Token(attester.passport_token(&claims).await?),
        }))
    }

    /// Checks the peer's proof for the session with `exporter` (and the challenge this node
    /// sent). Without a verifier every peer is accepted.
    pub async fn check(
        &self,
        proof: Option<&Proof>,
        exporter: &[u8],
        challenge: Option<&str>,
    ) -> Result<(), AttestationError> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let expected = session_claims(exporter, challenge);
        match (verifier.model(), proof) {
            (_, None) => Err(AttestationError::Missing),
            (Model::BackgroundCheck, Some(Proof::Evidence(evidence))) => {
                verifier.appraise(evidence, &expected).await?;
                Ok(())
            }
            (Model::Passport, Some(Proof::Token(token))) => {
                verifier.verify(token, &expected)?;
                Ok(())
            }
            (Model::BackgroundCheck, Some(Proof::Token(_))) => Err(AttestationError::WrongModel {
                got: "a passport token",
                want: "background_check",
            }),
            (Model::Passport, Some(Proof::Evidence(_))) => Err(AttestationError::WrongModel {
                got: "background-check evidence",
                want: "passport",
            }),
        }
    }
}

/// The runtime-data claims binding a proof to one TLS session.
pub fn session_claims(exporter: &[u8], challenge: Option<&str>) -> Claims {
    let mut claims = Claims::new();
    if let Some(challenge) = challenge {
        claims.insert("challenge_token".into(), challenge.into());
    }
    claims.insert("tng_peer_channel".into(), STANDARD.encode(exporter).into());
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_bind_the_exporter_and_the_challenge() {
        let claims = session_claims(&[1, 2, 3], Some("c"));
        assert_eq!(
            serde_json::Value::Object(claims),
            serde_json::json!({"challenge_token": "c", "tng_peer_channel": "AQID"})
        );
        let claims = session_claims(&[1, 2, 3], None);
        assert_eq!(
            serde_json::Value::Object(claims),
            serde_json::json!({"tng_peer_channel": "AQID"})
        );
    }

    #[tokio::test]
    async fn without_attestation_nothing_is_proved_or_demanded() {
        let auth = PeerAuth::default();
        assert!(auth.challenge().await.unwrap().is_none());
        assert!(auth.prove(&[0; 32], None).await.unwrap().is_none());
        auth.check(None, &[0; 32], None).await.unwrap();
    }
}
