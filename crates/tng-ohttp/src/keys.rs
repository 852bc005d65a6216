//! HPKE key configurations (RFC 9458 §3) and the gateway's private keys.

mod listing;
mod pem;
mod sender_key;
pub(crate) mod server_key;

pub use listing::{
    aead_name, kdf_name, kem_label, kem_name, list_key_configs, suite_label, ListedKeyConfig,
};
pub use sender_key::SenderKey;
pub use server_key::{KeyLoadError, ServerKey};

/// DHKEM(X25519, HKDF-SHA256), the only KEM TNG uses.
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// HKDF-SHA256, the only KDF TNG uses.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// Length of an X25519 public key and of its HPKE encapsulation.
pub const X25519_LEN: usize = 32;

/// The AEADs upstream's library supports (its rust-hpke backend has no AES-256-GCM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aead {
    Aes128Gcm,
    ChaCha20Poly1305,
}

impl Aead {
    pub fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::ChaCha20Poly1305 => 0x0003,
        }
    }

    pub fn from_id(id: u16) -> Option<Aead> {
        match id {
            0x0001 => Some(Aead::Aes128Gcm),
            0x0003 => Some(Aead::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Key length `Nk`.
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::ChaCha20Poly1305 => 32,
        }
    }

    /// Nonce length `Nn`.
    pub fn nonce_len(self) -> usize {
        12
    }

    /// Tag length `Nt`.
    pub fn tag_len(self) -> usize {
        16
    }

    /// Length of the response nonce, `max(Nn, Nk)` (RFC 9458 §4.4).
    pub fn response_nonce_len(self) -> usize {
        self.key_len().max(self.nonce_len())
    }

    pub(crate) fn hpke(self) -> crate::rfc9180::Aead {
        match self {
            Aead::Aes128Gcm => crate::rfc9180::Aead::Aes128Gcm,
            Aead::ChaCha20Poly1305 => crate::rfc9180::Aead::ChaCha20Poly1305,
        }
    }
}

/// One key configuration: an X25519 public key with KDF HKDF-SHA256 and one or more AEADs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConfig {
    pub key_id: u8,
    pub public_key: [u8; 32],
    pub aeads: Vec<Aead>,
}

impl KeyConfig {
    /// The RFC 9458 §3 encoding, without the length prefix used in lists.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 2 + X25519_LEN + 2 + 4 * self.aeads.len());
        out.push(self.key_id);
        out.extend_from_slice(&KEM_X25519_HKDF_SHA256.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        // A key config never lists more than a handful of suites, far below u16::MAX / 4.
        let suites_len = (4 * self.aeads.len()).min(usize::from(u16::MAX) & !3) as u16;
        out.extend_from_slice(&suites_len.to_be_bytes());
        for aead in self.aeads.iter().take(usize::from(suites_len / 4)) {
            out.extend_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
            out.extend_from_slice(&aead.id().to_be_bytes());
        }
        out
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyConfigError {
    #[error("key config list is truncated")]
    Truncated,
    #[error("key config entry is {entry} bytes long but its content takes {content}")]
    LengthMismatch { entry: usize, content: usize },
    #[error("key config symmetric suite list length {0} is not a positive multiple of 4")]
    InvalidSuiteLength(u16),
    #[error("key config list is not valid base64: {0}")]
    Base64(String),
}

/// `application/ohttp-keys` (RFC 9458 §3.2): `u16 length ‖ key config`, repeated.
pub fn encode_key_config_list(configs: &[KeyConfig]) -> Vec<u8> {
    let mut out = Vec::new();
    for config in configs {
        let encoded = config.encode();
        out.extend_from_slice(&(encoded.len() as u16).to_be_bytes());
        out.extend_from_slice(&encoded);
    }
    out
}

/// Parses an `application/ohttp-keys` list. Entries whose KEM we do not support are skipped,
/// suites we do not support are dropped, and an entry left without any suite is skipped (as
/// upstream's library does); anything structurally malformed is an error.
pub fn decode_key_config_list(bytes: &[u8]) -> Result<Vec<KeyConfig>, KeyConfigError> {
    let mut configs = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, after) = take_u16(rest)?;
        let entry = after
            .get(..usize::from(len))
            .ok_or(KeyConfigError::Truncated)?;
        rest = &after[usize::from(len)..];
        if let Some(config) = decode_entry(entry)? {
            configs.push(config);
        }
    }
    Ok(configs)
}

fn decode_entry(entry: &[u8]) -> Result<Option<KeyConfig>, KeyConfigError> {
    let (&key_id, rest) = entry.split_first().ok_or(KeyConfigError::Truncated)?;
    let (kem, rest) = take_u16(rest)?;
    if kem != KEM_X25519_HKDF_SHA256 {
        // The public key length depends on the KEM, so the rest cannot be checked; the entry
        // length already delimits it.
        return Ok(None);
    }
    let public_key: [u8; 32] = rest
        .get(..X25519_LEN)
        .and_then(|pk| pk.try_into().ok())
        .ok_or(KeyConfigError::Truncated)?;
    let (suites_len, rest) = take_u16(&rest[X25519_LEN..])?;
    if suites_len == 0 || suites_len % 4 != 0 {
        return Err(KeyConfigError::InvalidSuiteLength(suites_len));
    }
    let suites = rest
        .get(..usize::from(suites_len))
        .ok_or(KeyConfigError::Truncated)?;
    if rest.len() != suites.len() {
        return Err(KeyConfigError::LengthMismatch {
            entry: entry.len(),
            content: 1 + 2 + X25519_LEN + 2 + suites.len(),
        });
    }
    let mut aeads = Vec::new();
    for suite in suites.chunks_exact(4) {
        let kdf = u16::from_be_bytes([suite[0], suite[1]]);
        let aead = u16::from_be_bytes([suite[2], suite[3]]);
        if kdf != KDF_HKDF_SHA256 {
            continue;
        }
        if let Some(aead) = Aead::from_id(aead) {
            if !aeads.contains(&aead) {
                aeads.push(aead);
            }
        }
    }
    if aeads.is_empty() {
        return Ok(None);
    }
    Ok(Some(KeyConfig {
        key_id,
        public_key,
        aeads,
    }))
}

fn take_u16(bytes: &[u8]) -> Result<(u16, &[u8]), KeyConfigError> {
    match bytes {
        [a, b, rest @ ..] => Ok((u16::from_be_bytes([*a, *b]), rest)),
        _ => Err(KeyConfigError::Truncated),
    }
}

#[cfg(test)]
mod tests;
