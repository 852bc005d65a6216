use super::OhttpError;
use crate::keys::{KEM_X25519_HKDF_SHA256, X25519_LEN};

/// The request header: `key_id ‖ kem_id ‖ kdf_id ‖ aead_id ‖ enc` (RFC 9458 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub key_id: u8,
    pub kem: u16,
    pub kdf: u16,
    pub aead: u16,
    pub enc: [u8; 32],
}

impl RequestHeader {
    /// Header length with an X25519 encapsulation.
    pub const LEN: usize = 7 + X25519_LEN;

    /// Parses the first [`RequestHeader::LEN`] bytes of `bytes` (the rest is ignored).
    /// Fewer bytes yield [`OhttpError::Truncated`]; a KEM other than X25519 is
    /// [`OhttpError::UnsupportedSuite`] because its `enc` length is unknown.
    pub fn parse(bytes: &[u8]) -> Result<RequestHeader, OhttpError> {
        let ids = bytes.get(..7).ok_or(OhttpError::Truncated)?;
        let key_id = ids[0];
        let kem = u16::from_be_bytes([ids[1], ids[2]]);
        let kdf = u16::from_be_bytes([ids[3], ids[4]]);
        let aead = u16::from_be_bytes([ids[5], ids[6]]);
        if kem != KEM_X25519_HKDF_SHA256 {
            return Err(OhttpError::UnsupportedSuite { kem, kdf, aead });
        }
        let enc: [u8; 32] = bytes
            .get(7..Self::LEN)
            .and_then(|e| e.try_into().ok())
            .ok_or(OhttpError::Truncated)?;
        Ok(RequestHeader {
            key_id,
            kem,
            kdf,
            aead,
            enc,
        })
    }

    pub fn encode(&self) -> [u8; 39] {
        let mut out = [0u8; Self::LEN];
        out[..7].copy_from_slice(&self.ids());
        out[7..].copy_from_slice(&self.enc);
        out
    }

    /// The 7 bytes that go into the HPKE info string.
    pub(crate) fn ids(&self) -> [u8; 7] {
        ids(self.key_id, self.kem, self.kdf, self.aead)
    }
}

pub(crate) fn ids(key_id: u8, kem: u16, kdf: u16, aead: u16) -> [u8; 7] {
    let [k0, k1] = kem.to_be_bytes();
    let [d0, d1] = kdf.to_be_bytes();
    let [a0, a1] = aead.to_be_bytes();
    [key_id, k0, k1, d0, d1, a0, a1]
}
