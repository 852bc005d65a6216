//! The verifier's side: a peer's end-entity certificate, checked after the TLS handshake and
//! before any application byte crosses (spec §2.5).
//!
//! Checks, in order: the certificate structure and self-signature ([`ParsedCert::parse`]),
//! the evidence's binding to the certificate's key, then the model: background check sends
//! the evidence to our Attestation Service and verifies the token it returns; passport
//! verifies the token embedded in the certificate. Either way the token must echo the
//! certificate's `pubkey-hash` and pass the configured policy.
//!
//! Verdicts are cached per certificate (SHA-256 of its DER) until the token's `exp`, and one
//! verification is in flight per certificate: concurrent connections to the same peer wait
//! for it instead of each asking the Attestation Service. Refusals are not cached, so a
//! peer (or an Attestation Service) that recovers is accepted on the next connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use rustls::crypto::WebPkiSupportedAlgorithms;
use sha2::{Digest, Sha256};
use tng_attest::{Model, Verifier};
use tracing::info;

use crate::binding::PUBKEY_HASH;
use crate::cert::ParsedCert;
use crate::evidence::Evidence;
use crate::Error;

/// Verdicts kept at most (upstream keeps 1024 too); expired ones go first.
const MAX_VERDICTS: usize = 1024;

/// A peer certificate that passed every check.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub model: Model,
    /// The `pubkey-hash` of the verified certificate.
    pub pubkey_hash: String,
    /// The token's `exp` (seconds since the epoch): the verdict is reused until then.
    pub exp: u64,
    /// `cpu0=affirming,…` of an EAR token (empty for other profiles).
    pub status: String,
    pub policy_ids: Vec<String>,
    /// Taken from the cache rather than verified for this connection.
    pub cached: bool,
}

type Pending = Shared<BoxFuture<'static, Result<Verdict, Arc<Error>>>>;

enum Slot {
    Verified { verdict: Verdict, until: Instant },
    Pending { id: u64, verification: Pending },
}

#[derive(Default)]
struct Cache {
    slots: HashMap<[u8; 32], Slot>,
    next_id: u64,
}

pub struct PeerVerifier {
    verifier: Arc<Verifier>,
    algorithms: WebPkiSupportedAlgorithms,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("model", &self.verifier.model())
            .finish_non_exhaustive()
    }
}

impl PeerVerifier {
    /// `algorithms` verify the certificates' self-signatures (the TLS provider's).
    pub fn new(verifier: Arc<Verifier>, algorithms: WebPkiSupportedAlgorithms) -> Arc<Self> {
        Arc::new(Self {
            verifier,
            algorithms,
            cache: Mutex::new(Cache::default()),
        })
    }

    pub fn model(&self) -> Model {
        self.verifier.model()
    }

    /// Verifies the peer certificate `der`, from the cache when it was verified before and
    /// its token is still valid.
    pub async fn verify(self: &Arc<Self>, der: &[u8]) -> Result<Verdict, Arc<Error>> {
        let key: [u8; 32] = Sha256::digest(der).into();
        let (id, verification) = {
            let mut cache = self.lock();
            match cache.slots.get(&key) {
                Some(Slot::Verified { verdict, until }) if *until > Instant::now() => {
                    let mut verdict = verdict.clone();
                    verdict.cached = true;
                    return Ok(verdict);
                }
                Some(Slot::Pending { id, verification }) => (*id, verification.clone()),
                _ => {
                    let this = self.clone();
                    let der = der.to_vec();
                    let verification = async move { this.appraise(&der).await.map_err(Arc::new) }
                        .boxed()
                        .shared();
                    cache.next_id += 1;
                    let id = cache.next_id;
                    cache.make_room();
                    cache.slots.insert(
                        key,
                        Slot::Pending {
                            id,
                            verification: verification.clone(),
                        },
                    );
                    (id, verification)
                }
            }
        };
        let result = verification.await;
        let mut cache = self.lock();
        // The first waiter to finish settles the slot; the others find it settled.
        if matches!(cache.slots.get(&key), Some(Slot::Pending { id: current, .. }) if *current == id)
        {
            match result
                .as_ref()
                .ok()
                .and_then(|v| Some((v, valid_for(v.exp)?)))
            {
                Some((verdict, left)) => {
                    cache.slots.insert(
                        key,
                        Slot::Verified {
                            verdict: verdict.clone(),
                            until: Instant::now() + left,
                        },
                    );
                }
                None => {
                    cache.slots.remove(&key);
                }
            }
        }
        result
    }

    /// Verifies `der` now, without the cache.
    pub async fn appraise(&self, der: &[u8]) -> Result<Verdict, Error> {
        let cert = ParsedCert::parse(der, &self.algorithms)?;
        let expected = cert.check_binding()?;
        let token = match (&cert.evidence, self.verifier.model()) {
            (Evidence::Coco(evidence), Model::BackgroundCheck) => {
                self.verifier.appraise(evidence, &expected).await?
            }
            (Evidence::Token(token), Model::Passport) => self.verifier.verify(token, &expected)?,
            (Evidence::Token(_), Model::BackgroundCheck) => {
                return Err(Error::ModelMismatch {
                    expected: "background-check evidence",
                    found: "a passport token",
                })
            }
            (Evidence::Coco(_), Model::Passport) => {
                return Err(Error::ModelMismatch {
                    expected: "a passport token",
                    found: "background-check evidence",
                })
            }
        };
        let verdict = Verdict {
            model: self.verifier.model(),
            pubkey_hash: expected[PUBKEY_HASH]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            exp: token.exp,
            status: token.ear_status(),
            policy_ids: token.policy_ids.iter().cloned().collect(),
            cached: false,
        };
        info!(
            pubkey_hash = %verdict.pubkey_hash,
            ear_status = %verdict.status,
            policy_ids = ?verdict.policy_ids,
            exp = verdict.exp,
            "peer attestation verified"
        );
        Ok(verdict)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Cache {
    fn make_room(&mut self) {
        if self.slots.len() < MAX_VERDICTS {
            return;
        }
        let now = Instant::now();
        self.slots
            .retain(|_, slot| !matches!(slot, Slot::Verified { until, .. } if *until <= now));
        if self.slots.len() >= MAX_VERDICTS {
            let victim = self
                .slots
                .iter()
                .find(|(_, slot)| matches!(slot, Slot::Verified { .. }))
                .map(|(key, _)| *key);
            if let Some(victim) = victim {
                self.slots.remove(&victim);
            }
        }
    }
}

/// How long a verdict whose token expires at `exp` may be reused (none once expired).
fn valid_for(exp: u64) -> Option<Duration> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(exp).checked_sub(now)?;
    (!left.is_zero()).then_some(left)
}
