//! The gateway's X25519 private key together with the key config it is advertised as.

use std::fmt;

use super::{pem, Aead, KeyConfig};
use crate::rfc9180::{self, PrivateKey};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyLoadError {
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    #[error("expected a PEM \"PRIVATE KEY\" (PKCS#8) block, found \"{0}\"")]
    WrongPemLabel(String),
    #[error("invalid PKCS#8 private key: {0}")]
    InvalidPkcs8PrivateKey(String),
    #[error(
        "unsupported private key algorithm {name} (OID {oid}): an X25519 key (OID 1.3.101.110) \
         is required, e.g. from `openssl genpkey -algorithm X25519`"
    )]
    UnsupportedAlgorithm { oid: String, name: String },
    #[error("the PKCS#8 public key does not match the private key")]
    PublicKeyMismatch,
}

/// An X25519 private key and its [`KeyConfig`]. The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct ServerKey {
    secret: PrivateKey,
    config: KeyConfig,
}

impl ServerKey {
    /// A fresh random key offering AES-128-GCM then ChaCha20-Poly1305, the order upstream
    /// 2.12 advertises (an ingress picks the first).
    pub fn generate(key_id: u8) -> ServerKey {
        ServerKey::with_key(key_setup(PrivateKey::generate()), key_id)
    }

    pub fn from_private_bytes(secret: [u8; 32], key_id: u8) -> ServerKey {
        ServerKey::with_key(key_setup(PrivateKey::from_bytes(&secret)), key_id)
    }

    fn with_key(secret: PrivateKey, key_id: u8) -> ServerKey {
        let config = KeyConfig {
            key_id,
            public_key: *secret.public_key(),
            aeads: vec![Aead::Aes128Gcm, Aead::ChaCha20Poly1305],
        };
        ServerKey { secret, config }
    }

    /// Loads a PEM `PRIVATE KEY` (PKCS#8 v1, or v2 with a matching public key) holding an
    /// X25519 key, as written by `openssl genpkey -algorithm X25519`.
    pub fn from_pkcs8_pem(pem: &str, key_id: u8) -> Result<ServerKey, KeyLoadError> {
        let parsed = pem::decode(pem)?;
        let key = ServerKey::from_private_bytes(parsed.secret, key_id);
        match parsed.public_key {
            Some(pk) if pk != key.config.public_key => Err(KeyLoadError::PublicKeyMismatch),
            _ => Ok(key),
        }
    }

    /// The PKCS#8 v1 PEM form of this key (what [`ServerKey::from_pkcs8_pem`] reads).
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyLoadError> {
        let secret = self
            .secret
            .to_bytes()
            .map_err(|e| KeyLoadError::InvalidPkcs8PrivateKey(e.to_string()))?;
        pem::encode(&secret)
    }

    pub fn config(&self) -> &KeyConfig {
        &self.config
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.config.public_key
    }

    pub fn key_id(&self) -> u8 {
        self.config.key_id
    }

    pub(crate) fn hpke_key(&self) -> &PrivateKey {
        &self.secret
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("key_id", &self.config.key_id)
            .field("public_key", &hex::encode(self.config.public_key))
            .field("aeads", &self.config.aeads)
            .finish_non_exhaustive()
    }
}

/// AWS-LC only fails to set up an X25519 key when it cannot allocate or its RNG fails, which
/// the standard library's allocator and `OsRng` treat as fatal too.
pub(crate) fn key_setup(key: Result<PrivateKey, rfc9180::Error>) -> PrivateKey {
    match key {
        Ok(key) => key,
        Err(e) => panic!("AWS-LC X25519 key setup failed: {e}"),
    }
}
