//! The gateway's X25519 private key together with the key config it is advertised as.

use std::fmt;

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, Serializable};

use super::{pem, Aead, KeyConfig};

pub(crate) type PrivateKey = <X25519HkdfSha256 as Kem>::PrivateKey;
pub(crate) type PublicKey = <X25519HkdfSha256 as Kem>::PublicKey;

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
    /// A fresh random key offering ChaCha20-Poly1305 then AES-128-GCM, the order upstream
    /// advertises (its ingress picks the first).
    pub fn generate(key_id: u8) -> ServerKey {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        ServerKey::from_private_bytes(secret, key_id)
    }

    pub fn from_private_bytes(secret: [u8; 32], key_id: u8) -> ServerKey {
        let secret = private_key(&secret);
        let public = X25519HkdfSha256::sk_to_pk(&secret);
        let config = KeyConfig {
            key_id,
            public_key: public.to_bytes().into(),
            aeads: vec![Aead::ChaCha20Poly1305, Aead::Aes128Gcm],
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
        pem::encode(&self.secret.to_bytes().into())
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

    pub(crate) fn hpke_secret(&self) -> &PrivateKey {
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

/// X25519 accepts any 32 bytes as a private key (clamping happens when it is used).
pub(crate) fn private_key(secret: &[u8; 32]) -> PrivateKey {
    match PrivateKey::from_bytes(secret) {
        Ok(sk) => sk,
        // hpke only rejects a wrong length, which the array type rules out; deriving a key
        // from the bytes keeps this total without a panic path.
        Err(_) => X25519HkdfSha256::derive_keypair(secret).0,
    }
}

pub(crate) fn public_key(bytes: &[u8; 32]) -> Result<PublicKey, hpke::HpkeError> {
    PublicKey::from_bytes(bytes)
}
