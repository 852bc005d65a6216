//! The attester's side: a certificate for a fresh key with evidence bound to it, rotated in
//! the background and handed to rustls on every full handshake (spec §3.1).
//!
//! - `refresh_interval` > 0: the first certificate is made at start (three attempts, 1 s
//!   apart; failure aborts start-up), then a new key and evidence every interval — earlier
//!   when a passport token or the certificate would expire first. A failed rotation keeps the
//!   current certificate and is retried after [`RETRY_AFTER`].
//! - `refresh_interval` = 0: a new key and evidence for every full handshake
//!   ([`CertManager::fresh`]); the transport asks for it before it starts the handshake.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use tng_attest::{Attester, Model};
use tracing::{info, warn};

use crate::binding::{claims_for_spki, pubkey_hash};
use crate::cert::{build, generate_key, spki_der, VALIDITY};
use crate::evidence::Evidence;
use crate::Error;

/// Attempts at the first certificate, as upstream.
const START_ATTEMPTS: u32 = 3;
/// Pause between failed attempts, and before retrying a failed rotation.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A passport certificate is replaced this long before its token expires, so a peer never
/// receives a token that expires during its verification.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// One attested certificate with its private key.
pub struct IssuedCert {
    pub der: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub evidence: Evidence,
    /// The `pubkey-hash` the evidence is bound to.
    pub pubkey_hash: String,
    /// Passport: the token's `exp` (seconds since the epoch).
    pub token_exp: Option<u64>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("pubkey_hash", &self.pubkey_hash)
            .field("token_exp", &self.token_exp)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// A fresh key, evidence bound to it from the Attestation Agent (and, in the passport
    /// model, the token the attester's Attestation Service issues for it), the certificate.
    pub async fn issue(attester: &Attester) -> Result<Self, Error> {
        let key = generate_key()?;
        let spki = spki_der(&key);
        let claims = claims_for_spki(&spki);
        let coco = attester.evidence(&claims).await?;
        let (evidence, token_exp) = match attester.model() {
            Model::BackgroundCheck => (Evidence::Coco(coco), None),
            Model::Passport => {
                let token = attester.convert(&coco).await?;
                let exp = token_exp(&token);
                (Evidence::Token(token), exp)
            }
        };
        let der = build(&key, &evidence, SystemTime::now())?;
        Ok(Self {
            der,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            evidence,
            pubkey_hash: pubkey_hash(&spki),
            token_exp,
        })
    }

    /// The certificate and its signing key, for rustls.
    pub fn certified_key(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, Error> {
        let signing = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .map_err(|e| Error::Build(format!("TLS signing key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(vec![self.der.clone()], signing)))
    }

    /// When this certificate should be replaced: after `interval`, or before the token or
    /// the certificate expires, whichever comes first (at least [`RETRY_AFTER`]).
    fn replace_after(&self, interval: Duration) -> Duration {
        let mut after = interval.min(VALIDITY);
        if let Some(exp) = self.token_exp {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let left = Duration::from_secs(exp).saturating_sub(now + TOKEN_MARGIN);
            after = after.min(left);
        }
        after.max(RETRY_AFTER)
    }
}

/// The `exp` of our own Attestation Service's token (read, not verified: the peer verifies).
fn token_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

/// Owns the attester's current certificate and rotates it.
pub struct CertManager {
    attester: Arc<Attester>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("model", &self.attester.model())
            .field("refresh_interval", &self.attester.refresh_interval())
            .finish_non_exhaustive()
    }
}

impl CertManager {
    /// Makes the first certificate and, unless `refresh_interval` is 0, starts rotating it
    /// (the rotation task ends when the manager is dropped). Needs a Tokio runtime.
    pub async fn start(
        attester: Arc<Attester>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, Error> {
        let mut attempt = 1;
        let first = loop {
            match IssuedCert::issue(&attester).await {
                Ok(issued) => break issued,
                Err(err) if attempt < START_ATTEMPTS => {
                    warn!("attested certificate, attempt {attempt} of {START_ATTEMPTS}: {err}");
                    attempt += 1;
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(err) => return Err(err),
            }
        };
        info!(pubkey_hash = %first.pubkey_hash, model = ?attester.model(), "attested certificate ready");
        let manager = Arc::new(Self {
            current: RwLock::new(first.certified_key(&provider)?),
            attester,
            provider,
        });
        if !manager.per_handshake() {
            let interval = manager.attester.refresh_interval();
            let first_delay = first.replace_after(interval);
            tokio::spawn(rotate(Arc::downgrade(&manager), first_delay));
        }
        Ok(manager)
    }

    /// `refresh_interval: 0`: every full handshake gets a certificate of its own.
    pub fn per_handshake(&self) -> bool {
        self.attester.refresh_interval().is_zero()
    }

    /// The certificate handed out now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A certificate for one handshake: the current one, or a new one when `refresh_interval`
    /// is 0.
    pub async fn for_handshake(&self) -> Result<Arc<CertifiedKey>, Error> {
        if self.per_handshake() {
            self.fresh().await
        } else {
            Ok(self.current())
        }
    }

    /// A new certificate (not installed as the current one).
    pub async fn fresh(&self) -> Result<Arc<CertifiedKey>, Error> {
        IssuedCert::issue(&self.attester)
            .await?
            .certified_key(&self.provider)
    }

    fn install(&self, certified: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut guard) => *guard = certified,
            Err(poisoned) => *poisoned.into_inner() = certified,
        }
    }
}

async fn rotate(manager: Weak<CertManager>, mut delay: Duration) {
    loop {
        tokio::time::sleep(delay).await;
        let Some(manager) = manager.upgrade() else {
            return;
        };
        let interval = manager.attester.refresh_interval();
        let issued = IssuedCert::issue(&manager.attester).await;
        delay = match issued.and_then(|i| Ok((i.certified_key(&manager.provider)?, i))) {
            Ok((certified, issued)) => {
                manager.install(certified);
                info!(pubkey_hash = %issued.pubkey_hash, "attested certificate rotated");
                issued.replace_after(interval)
            }
            Err(err) => {
                warn!("attested certificate not rotated, the current one stays in use: {err}");
                RETRY_AFTER
            }
        };
    }
}

impl rustls::server::ResolvesServerCert for CertManager {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for CertManager {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// One certificate for every handshake of a configuration (`refresh_interval: 0` builds one
/// configuration per handshake around a fresh certificate).
#[derive(Debug)]
pub struct FixedCert(pub Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
