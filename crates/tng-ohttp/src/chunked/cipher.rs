//! The AEAD state behind each direction: the HPKE context for requests, and for responses an
//! AEAD keyed from the HPKE exporter (RFC 9458 §4.4). Both seal into and open in the chunk
//! buffers themselves, so a chunk is never copied for its encryption.

use aws_lc_rs::hkdf;
use bytes::{Bytes, BytesMut};
use zeroize::Zeroizing;

use super::OhttpError;
use crate::keys::Aead;
use crate::rfc9180::{self, AeadState, OutLen, PrivateKey, ReceiverMode, SenderMode, TAG_LEN};

/// Info prefix of the request's HPKE context; the 7 header bytes follow a zero byte.
pub(crate) const REQUEST_INFO_LABEL: &[u8] = b"message/bhttp chunked request";
/// Exporter context for the response secret.
pub(crate) const RESPONSE_EXPORT_LABEL: &[u8] = b"message/bhttp chunked response";

pub(crate) trait Seal {
    /// Appends `ct ‖ tag` of `plaintext` to `out`.
    fn seal_into(
        &mut self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), OhttpError>;
}

pub(crate) trait Open {
    /// Opens `ct ‖ tag` where it lies and returns the plaintext part of the same buffer.
    fn open(&mut self, ciphertext: BytesMut, aad: &[u8]) -> Result<Bytes, OhttpError>;
}

pub(crate) fn request_info(ids: &[u8; 7]) -> Vec<u8> {
    let mut info = Vec::with_capacity(REQUEST_INFO_LABEL.len() + 1 + ids.len());
    info.extend_from_slice(REQUEST_INFO_LABEL);
    info.push(0);
    info.extend_from_slice(ids);
    info
}

pub(crate) struct HpkeSender(rfc9180::SenderContext);

pub(crate) struct HpkeReceiver(rfc9180::ReceiverContext);

/// What a freshly set-up sender context yields.
pub(crate) struct SenderSetup {
    pub ctx: HpkeSender,
    pub enc: [u8; 32],
    /// The response secret, exported now so the response can be decoded at any time.
    pub response_secret: Vec<u8>,
}

/// The ephemeral key is DeriveKeyPair(32 random bytes), the RFC's GenerateKeyPair, so that a
/// seeded RNG reproduces a request byte for byte.
pub(crate) fn setup_sender<R: rand::RngCore + rand::CryptoRng>(
    aead: Aead,
    recipient: &[u8; 32],
    sender: Option<&PrivateKey>,
    info: &[u8],
    rng: &mut R,
) -> Result<SenderSetup, OhttpError> {
    let mut ikm = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut ikm[..]);
    let ephemeral = PrivateKey::derive(&ikm[..]).map_err(OhttpError::Hpke)?;
    let mode = match sender {
        Some(key) => SenderMode::Auth(key),
        None => SenderMode::Base,
    };
    let (enc, ctx) = rfc9180::setup_sender(aead.hpke(), recipient, info, mode, &ephemeral)
        .map_err(OhttpError::Hpke)?;
    let mut secret = vec![0u8; aead.response_nonce_len()];
    ctx.export(RESPONSE_EXPORT_LABEL, &mut secret)
        .map_err(OhttpError::Hpke)?;
    Ok(SenderSetup {
        ctx: HpkeSender(ctx),
        enc,
        response_secret: secret,
    })
}

pub(crate) fn setup_receiver(
    aead: Aead,
    secret_key: &PrivateKey,
    enc: &[u8; 32],
    sender: Option<&[u8; 32]>,
    info: &[u8],
) -> Result<(HpkeReceiver, Vec<u8>), OhttpError> {
    let mode = match sender {
        Some(pk) => ReceiverMode::Auth(pk),
        None => ReceiverMode::Base,
    };
    let ctx = rfc9180::setup_receiver(aead.hpke(), enc, secret_key, info, mode)
        .map_err(OhttpError::Hpke)?;
    let mut secret = vec![0u8; aead.response_nonce_len()];
    ctx.export(RESPONSE_EXPORT_LABEL, &mut secret)
        .map_err(OhttpError::Hpke)?;
    Ok((HpkeReceiver(ctx), secret))
}

/// Appends `plaintext` to `out` and encrypts it there; on failure `out` is left as it was, so
/// no plaintext can reach the wire.
fn seal_appending(
    out: &mut BytesMut,
    plaintext: &[u8],
    seal: impl FnOnce(&mut [u8]) -> Result<[u8; TAG_LEN], rfc9180::Error>,
) -> Result<(), OhttpError> {
    let start = out.len();
    out.reserve(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    match seal(&mut out[start..]) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(OhttpError::Seal)
        }
    }
}

fn open_in_buffer(
    mut buf: BytesMut,
    open: impl FnOnce(&mut [u8]) -> Result<usize, rfc9180::Error>,
) -> Result<Bytes, OhttpError> {
    let len = open(&mut buf[..]).map_err(|_| OhttpError::Open)?;
    buf.truncate(len);
    Ok(buf.freeze())
}

impl Seal for HpkeSender {
    fn seal_into(
        &mut self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), OhttpError> {
        seal_appending(out, plaintext, |buf| self.0.seal_in_place(aad, buf))
    }
}

impl Open for HpkeReceiver {
    fn open(&mut self, ciphertext: BytesMut, aad: &[u8]) -> Result<Bytes, OhttpError> {
        open_in_buffer(ciphertext, |buf| {
            self.0.open_in_place(aad, buf).map(|pt| pt.len())
        })
    }
}

/// The response AEAD with its per-chunk counter; used for both sealing and opening.
pub(crate) struct ResponseCipher(AeadState);

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
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(secret);
        let mut key = Zeroizing::new([0u8; 32]);
        let key = &mut key[..aead.key_len()];
        let mut base_nonce = [0u8; rfc9180::NONCE_LEN];
        prk.expand(&[b"key"], OutLen(key.len()))
            .and_then(|okm| okm.fill(key))
            .and_then(|()| prk.expand(&[b"nonce"], OutLen(base_nonce.len())))
            .and_then(|okm| okm.fill(&mut base_nonce))
            .map_err(|_| OhttpError::Seal)?;
        AeadState::new(aead.hpke(), key, base_nonce)
            .map(ResponseCipher)
            .map_err(|_| OhttpError::Seal)
    }
}

impl Seal for ResponseCipher {
    fn seal_into(
        &mut self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), OhttpError> {
        seal_appending(out, plaintext, |buf| self.0.seal_in_place(aad, buf))
    }
}

impl Open for ResponseCipher {
    fn open(&mut self, ciphertext: BytesMut, aad: &[u8]) -> Result<Bytes, OhttpError> {
        open_in_buffer(ciphertext, |buf| {
            self.0.open_in_place(aad, buf).map(|pt| pt.len())
        })
    }
}
