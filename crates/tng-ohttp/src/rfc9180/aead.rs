//! The AEADs and the per-message nonce sequence (RFC 9180 §5.2), which RFC 9458's response
//! encryption reuses with its own key and nonce.

use aws_lc_rs::aead::{self as lc, Aad, LessSafeKey, Nonce, UnboundKey};

use super::{Error, NONCE_LEN, TAG_LEN};

/// The AEADs of the RFC 9180 registry that AWS-LC provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Aead {
    pub fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::Aes256Gcm => 0x0002,
            Aead::ChaCha20Poly1305 => 0x0003,
        }
    }

    pub fn from_id(id: u16) -> Option<Aead> {
        match id {
            0x0001 => Some(Aead::Aes128Gcm),
            0x0002 => Some(Aead::Aes256Gcm),
            0x0003 => Some(Aead::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// `Nk`.
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    fn algorithm(self) -> &'static lc::Algorithm {
        match self {
            Aead::Aes128Gcm => &lc::AES_128_GCM,
            Aead::Aes256Gcm => &lc::AES_256_GCM,
            Aead::ChaCha20Poly1305 => &lc::CHACHA20_POLY1305,
        }
    }
}

/// A key with its base nonce and sequence number: message `i` uses `base_nonce XOR i`.
pub(crate) struct AeadState {
    key: LessSafeKey,
    base_nonce: [u8; NONCE_LEN],
    pub(super) seq: u64,
}

impl AeadState {
    pub(crate) fn new(
        aead: Aead,
        key: &[u8],
        base_nonce: [u8; NONCE_LEN],
    ) -> Result<AeadState, Error> {
        let key = UnboundKey::new(aead.algorithm(), key).map_err(|_| Error::Seal)?;
        Ok(AeadState {
            key: LessSafeKey::new(key),
            base_nonce,
            seq: 0,
        })
    }

    /// ComputeNonce: the sequence number, big-endian and right-aligned, XORed into the base
    /// nonce. The counter is 64 bits, far inside the RFC's 2^96 - 1 limit.
    pub(super) fn nonce(&self) -> Nonce {
        let mut nonce = self.base_nonce;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        Nonce::assume_unique_for_key(nonce)
    }

    /// IncrementSeq, refusing to wrap so that no nonce is ever reused.
    fn advance(&mut self) -> Result<(), Error> {
        self.seq = self.seq.checked_add(1).ok_or(Error::MessageLimit)?;
        Ok(())
    }

    pub(crate) fn seal_in_place(
        &mut self,
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        if self.seq == u64::MAX {
            return Err(Error::MessageLimit);
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(), Aad::from(aad), in_out)
            .map_err(|_| Error::Seal)?;
        self.advance()?;
        tag.as_ref().try_into().map_err(|_| Error::Seal)
    }

    /// Opens `ct ‖ tag` in place. The sequence number only advances on success, as the RFC's
    /// ContextR.Open does.
    pub(crate) fn open_in_place<'a>(
        &mut self,
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8], Error> {
        if self.seq == u64::MAX {
            return Err(Error::MessageLimit);
        }
        let plaintext = self
            .key
            .open_in_place(self.nonce(), Aad::from(aad), in_out)
            .map_err(|_| Error::Open)?;
        self.advance()?;
        Ok(plaintext)
    }
}
