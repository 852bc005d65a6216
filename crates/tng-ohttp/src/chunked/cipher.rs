//! The AEAD state behind each direction: the HPKE context for requests, and for responses an
//! AEAD keyed from the HPKE exporter (RFC 9458 §4.4).

use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use hkdf::Hkdf;
use hpke::aead::{AeadCtxR, AeadCtxS, AesGcm128, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{OpModeR, OpModeS, Serializable};
use sha2::Sha256;

use super::OhttpError;
use crate::keys::server_key::{PrivateKey, PublicKey};
use crate::keys::Aead;
use crate::rng::Rng08;

/// Info prefix of the request's HPKE context; the 7 header bytes follow a zero byte.
pub(crate) const REQUEST_INFO_LABEL: &[u8] = b"message/bhttp chunked request";
/// Exporter context for the response secret.
pub(crate) const RESPONSE_EXPORT_LABEL: &[u8] = b"message/bhttp chunked response";

pub(crate) trait Seal {
    fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, OhttpError>;
}

pub(crate) trait Open {
    fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, OhttpError>;
}

pub(crate) fn request_info(ids: &[u8; 7]) -> Vec<u8> {
    let mut info = Vec::with_capacity(REQUEST_INFO_LABEL.len() + 1 + ids.len());
    info.extend_from_slice(REQUEST_INFO_LABEL);
    info.push(0);
    info.extend_from_slice(ids);
    info
}

type Kem = X25519HkdfSha256;

// The AES context carries its expanded key schedule (~800 bytes), hence the boxes.
pub(crate) enum HpkeSender {
    ChaCha(Box<AeadCtxS<ChaCha20Poly1305, HkdfSha256, Kem>>),
    Aes(Box<AeadCtxS<AesGcm128, HkdfSha256, Kem>>),
}

pub(crate) enum HpkeReceiver {
    ChaCha(Box<AeadCtxR<ChaCha20Poly1305, HkdfSha256, Kem>>),
    Aes(Box<AeadCtxR<AesGcm128, HkdfSha256, Kem>>),
}

/// What a freshly set-up sender context yields.
pub(crate) struct SenderSetup {
    pub ctx: HpkeSender,
    pub enc: [u8; 32],
    /// The response secret, exported now so the response can be decoded at any time.
    pub response_secret: Vec<u8>,
}

pub(crate) fn setup_sender<R: rand::RngCore + rand::CryptoRng>(
    aead: Aead,
    recipient: &PublicKey,
    sender: Option<(PrivateKey, PublicKey)>,
    info: &[u8],
    rng: &mut R,
) -> Result<SenderSetup, OhttpError> {
    let mode = match sender {
        Some(pair) => OpModeS::Auth(pair),
        None => OpModeS::Base,
    };
    let mut rng = Rng08(rng);
    let mut secret = vec![0u8; aead.response_nonce_len()];
    let (enc, ctx) = match aead {
        Aead::ChaCha20Poly1305 => {
            let (enc, ctx) = hpke::setup_sender::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
                &mode, recipient, info, &mut rng,
            )
            .map_err(OhttpError::Hpke)?;
            ctx.export(RESPONSE_EXPORT_LABEL, &mut secret)
                .map_err(OhttpError::Hpke)?;
            (enc, HpkeSender::ChaCha(Box::new(ctx)))
        }
        Aead::Aes128Gcm => {
            let (enc, ctx) = hpke::setup_sender::<AesGcm128, HkdfSha256, Kem, _>(
                &mode, recipient, info, &mut rng,
            )
            .map_err(OhttpError::Hpke)?;
            ctx.export(RESPONSE_EXPORT_LABEL, &mut secret)
                .map_err(OhttpError::Hpke)?;
            (enc, HpkeSender::Aes(Box::new(ctx)))
        }
    };
    Ok(SenderSetup {
        ctx,
        enc: enc.to_bytes().into(),
        response_secret: secret,
    })
}

pub(crate) fn setup_receiver(
    aead: Aead,
    secret_key: &PrivateKey,
    enc: &[u8; 32],
    sender: Option<PublicKey>,
    info: &[u8],
) -> Result<(HpkeReceiver, Vec<u8>), OhttpError> {
    let mode = match sender {
        Some(pk) => OpModeR::Auth(pk),
        None => OpModeR::Base,
    };
    let encapped = <<Kem as hpke::Kem>::EncappedKey as hpke::Deserializable>::from_bytes(enc)
        .map_err(OhttpError::Hpke)?;
    let mut secret = vec![0u8; aead.response_nonce_len()];
    let ctx = match aead {
        Aead::ChaCha20Poly1305 => {
            let ctx = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, Kem>(
                &mode, secret_key, &encapped, info,
            )
            .map_err(OhttpError::Hpke)?;
            ctx.export(RESPONSE_EXPORT_LABEL, &mut secret)
                .map_err(OhttpError::Hpke)?;
            HpkeReceiver::ChaCha(Box::new(ctx))
        }
        Aead::Aes128Gcm => {
            let ctx = hpke::setup_receiver::<AesGcm128, HkdfSha256, Kem>(
                &mode, secret_key, &encapped, info,
            )
            .map_err(OhttpError::Hpke)?;
            ctx.export(RESPONSE_EXPORT_LABEL, &mut secret)
                .map_err(OhttpError::Hpke)?;
            HpkeReceiver::Aes(Box::new(ctx))
        }
    };
    Ok((ctx, secret))
}

impl Seal for HpkeSender {
    fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, OhttpError> {
        match self {
            HpkeSender::ChaCha(ctx) => ctx.seal(plaintext, aad),
            HpkeSender::Aes(ctx) => ctx.seal(plaintext, aad),
        }
        .map_err(|_| OhttpError::Seal)
    }
}

impl Open for HpkeReceiver {
    fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, OhttpError> {
        match self {
            HpkeReceiver::ChaCha(ctx) => ctx.open(ciphertext, aad),
            HpkeReceiver::Aes(ctx) => ctx.open(ciphertext, aad),
        }
        .map_err(|_| OhttpError::Open)
    }
}

enum ResponseAead {
    ChaCha(Box<chacha20poly1305::ChaCha20Poly1305>),
    Aes(Box<aes_gcm::Aes128Gcm>),
}

/// The response AEAD with its per-chunk counter; used for both sealing and opening.
pub(crate) struct ResponseCipher {
    aead: ResponseAead,
    base_nonce: [u8; 12],
    counter: u64,
}

impl ResponseCipher {
    /// `salt = enc ‖ response_nonce`, `prk = Extract(salt, secret)`,
    /// `key = Expand(prk, "key", Nk)`, `nonce = Expand(prk, "nonce", Nn)`.
    pub(crate) fn derive(
        aead: Aead,
        secret: &[u8],
        enc: &[u8],
        response_nonce: &[u8],
    ) -> Result<ResponseCipher, OhttpError> {
        let mut salt = Vec::with_capacity(enc.len() + response_nonce.len());
        salt.extend_from_slice(enc);
        salt.extend_from_slice(response_nonce);
        let prk = Hkdf::<Sha256>::new(Some(&salt), secret);
        let mut key = vec![0u8; aead.key_len()];
        let mut base_nonce = [0u8; 12];
        prk.expand(b"key", &mut key)
            .and_then(|()| prk.expand(b"nonce", &mut base_nonce))
            .map_err(|_| OhttpError::Seal)?;
        let aead = match aead {
            Aead::ChaCha20Poly1305 => ResponseAead::ChaCha(Box::new(
                chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key)
                    .map_err(|_| OhttpError::Seal)?,
            )),
            Aead::Aes128Gcm => ResponseAead::Aes(Box::new(
                aes_gcm::Aes128Gcm::new_from_slice(&key).map_err(|_| OhttpError::Seal)?,
            )),
        };
        Ok(ResponseCipher {
            aead,
            base_nonce,
            counter: 0,
        })
    }

    /// `base_nonce XOR counter` (big-endian, right-aligned), then advances the counter.
    fn next_nonce(&mut self) -> Option<[u8; 12]> {
        let mut nonce = self.base_nonce;
        for (n, c) in nonce[4..].iter_mut().zip(self.counter.to_be_bytes()) {
            *n ^= c;
        }
        self.counter = self.counter.checked_add(1)?;
        Some(nonce)
    }
}

impl Seal for ResponseCipher {
    fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, OhttpError> {
        let nonce = self.next_nonce().ok_or(OhttpError::Seal)?;
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        match &self.aead {
            ResponseAead::ChaCha(c) => c.encrypt((&nonce).into(), payload),
            ResponseAead::Aes(c) => c.encrypt((&nonce).into(), payload),
        }
        .map_err(|_| OhttpError::Seal)
    }
}

impl Open for ResponseCipher {
    fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, OhttpError> {
        let nonce = self.next_nonce().ok_or(OhttpError::Open)?;
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        match &self.aead {
            ResponseAead::ChaCha(c) => c.decrypt((&nonce).into(), payload),
            ResponseAead::Aes(c) => c.decrypt((&nonce).into(), payload),
        }
        .map_err(|_| OhttpError::Open)
    }
}
