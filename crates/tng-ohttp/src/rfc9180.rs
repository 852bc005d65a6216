//! HPKE (RFC 9180) for the suites TNG speaks: DHKEM(X25519, HKDF-SHA256) with HKDF-SHA256 and
//! AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305, in base and Auth mode.
//!
//! Every primitive (X25519, HMAC-SHA256, HKDF-Expand, the AEADs) is AWS-LC's, reached through
//! aws-lc-rs; this module only composes them the way the RFC specifies: the labeled KDF
//! (§4), DHKEM (§4.1), the key schedule (§5.1), the nonce sequence (§5.2) and the exporter
//! (§5.3). Public keys are computed once, when a private key is created, and kept beside it:
//! a decapsulation costs one X25519 (two in Auth mode), an encapsulation one more for the
//! ephemeral public key.

mod aead;
mod kdf;
mod kem;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use zeroize::Zeroizing;

pub use aead::Aead;
pub(crate) use aead::AeadState;
pub(crate) use kdf::OutLen;

/// DHKEM(X25519, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0020;
/// HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// `Nsk`, `Npk` and `Nenc` of X25519.
pub const X25519_LEN: usize = 32;
/// `Nt`, the same for every AEAD supported here.
pub const TAG_LEN: usize = 16;
/// `Nn`, the same for every AEAD supported here.
pub const NONCE_LEN: usize = 12;

const MODE_BASE: u8 = 0x00;
const MODE_AUTH: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid X25519 private key")]
    InvalidPrivateKey,
    /// Covers the RFC's ValidationError: AWS-LC refuses a peer key whose shared secret is
    /// all zeroes (a small-order point), and so do we.
    #[error("X25519 failed: the peer public key is invalid or of small order")]
    DiffieHellman,
    #[error("HKDF failed (output longer than 255 * 32 bytes)")]
    Kdf,
    #[error("AEAD encryption failed")]
    Seal,
    #[error("AEAD decryption failed")]
    Open,
    #[error("the context's message limit was reached")]
    MessageLimit,
    #[error("random number generation failed")]
    Rng,
}

/// An X25519 private key with its public key. Cloning shares the key.
#[derive(Clone)]
pub struct PrivateKey {
    key: Arc<agreement::PrivateKey>,
    public: [u8; X25519_LEN],
}

impl PrivateKey {
    /// A fresh key from AWS-LC's RNG.
    pub fn generate() -> Result<PrivateKey, Error> {
        let key = agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| Error::Rng)?;
        PrivateKey::new(key)
    }

    /// DeserializePrivateKey: X25519 takes any 32 bytes (clamping happens in the scalar
    /// multiplication).
    pub fn from_bytes(secret: &[u8; X25519_LEN]) -> Result<PrivateKey, Error> {
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, secret)
            .map_err(|_| Error::InvalidPrivateKey)?;
        PrivateKey::new(key)
    }

    /// DeriveKeyPair (§7.1.3).
    pub fn derive(ikm: &[u8]) -> Result<PrivateKey, Error> {
        let secret = kem::derive_secret(ikm)?;
        PrivateKey::from_bytes(&secret)
    }

    fn new(key: agreement::PrivateKey) -> Result<PrivateKey, Error> {
        let public = key
            .compute_public_key()
            .map_err(|_| Error::InvalidPrivateKey)?;
        let public = public
            .as_ref()
            .try_into()
            .map_err(|_| Error::InvalidPrivateKey)?;
        Ok(PrivateKey {
            key: Arc::new(key),
            public,
        })
    }

    pub fn public_key(&self) -> &[u8; X25519_LEN] {
        &self.public
    }

    /// SerializePrivateKey: the 32 bytes the key was made from.
    pub fn to_bytes(&self) -> Result<Zeroizing<[u8; X25519_LEN]>, Error> {
        let seed: Curve25519SeedBin<'static> = self
            .key
            .as_be_bytes()
            .map_err(|_| Error::InvalidPrivateKey)?;
        let mut out = Zeroizing::new([0u8; X25519_LEN]);
        if seed.as_ref().len() != X25519_LEN {
            return Err(Error::InvalidPrivateKey);
        }
        out.copy_from_slice(seed.as_ref());
        Ok(out)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

/// How the sender authenticates.
#[derive(Clone, Copy, Debug)]
pub enum SenderMode<'a> {
    Base,
    /// Auth mode with the sender's static key `skS`.
    Auth(&'a PrivateKey),
}

/// What the receiver expects of the sender.
#[derive(Clone, Copy, Debug)]
pub enum ReceiverMode<'a> {
    Base,
    /// Auth mode with the sender's static public key `pkS`.
    Auth(&'a [u8; X25519_LEN]),
}

/// SetupBaseS / SetupAuthS with a caller-supplied ephemeral key: returns `enc` and the
/// sender's context.
pub fn setup_sender(
    aead: Aead,
    recipient: &[u8; X25519_LEN],
    info: &[u8],
    mode: SenderMode<'_>,
    ephemeral: &PrivateKey,
) -> Result<([u8; X25519_LEN], SenderContext), Error> {
    let (shared_secret, mode) = match mode {
        SenderMode::Base => (kem::encap(recipient, ephemeral)?, MODE_BASE),
        SenderMode::Auth(sender) => (kem::auth_encap(recipient, ephemeral, sender)?, MODE_AUTH),
    };
    let ctx = Context::new(key_schedule(aead, mode, &shared_secret, info)?)?;
    Ok((*ephemeral.public_key(), SenderContext(ctx)))
}

/// SetupBaseR / SetupAuthR.
pub fn setup_receiver(
    aead: Aead,
    enc: &[u8; X25519_LEN],
    recipient: &PrivateKey,
    info: &[u8],
    mode: ReceiverMode<'_>,
) -> Result<ReceiverContext, Error> {
    let (shared_secret, mode) = match mode {
        ReceiverMode::Base => (kem::decap(enc, recipient)?, MODE_BASE),
        ReceiverMode::Auth(sender) => (kem::auth_decap(enc, recipient, sender)?, MODE_AUTH),
    };
    Ok(ReceiverContext(Context::new(key_schedule(
        aead,
        mode,
        &shared_secret,
        info,
    )?)?))
}

/// The sender's encryption context (§5.2).
pub struct SenderContext(Context);

/// The receiver's decryption context (§5.2).
pub struct ReceiverContext(Context);

impl SenderContext {
    /// ContextS.Seal: returns `ct ‖ tag`.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = self.0.aead.seal_in_place(aad, &mut out)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Encrypts `in_out` in place and returns the tag, which follows the ciphertext on the wire.
    pub fn seal_in_place(&mut self, aad: &[u8], in_out: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        self.0.aead.seal_in_place(aad, in_out)
    }

    /// Context.Export.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.0.export(exporter_context, out)
    }
}

impl ReceiverContext {
    /// ContextR.Open of `ct ‖ tag`.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut buf = ciphertext.to_vec();
        let len = self.0.aead.open_in_place(aad, &mut buf)?.len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Opens `ct ‖ tag` in place; the plaintext is the returned prefix of `in_out`.
    pub fn open_in_place<'a>(
        &mut self,
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8], Error> {
        self.0.aead.open_in_place(aad, in_out)
    }

    /// Context.Export.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.0.export(exporter_context, out)
    }
}

struct Context {
    aead: AeadState,
    suite_id: [u8; 10],
    exporter_secret: Zeroizing<[u8; kdf::NH]>,
}

impl Context {
    fn new(schedule: KeySchedule) -> Result<Context, Error> {
        let aead = AeadState::new(
            schedule.aead,
            &schedule.key[..schedule.aead.key_len()],
            schedule.base_nonce,
        )?;
        Ok(Context {
            aead,
            suite_id: schedule.suite_id,
            exporter_secret: schedule.exporter_secret,
        })
    }

    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Error> {
        kdf::labeled_expand(
            &self.suite_id,
            &self.exporter_secret,
            b"sec",
            &[exporter_context],
            out,
        )
    }
}

/// The outputs of KeySchedule (§5.1) with the PSK fixed to the default (empty) one.
struct KeySchedule {
    aead: Aead,
    suite_id: [u8; 10],
    key: Zeroizing<[u8; 32]>,
    base_nonce: [u8; NONCE_LEN],
    exporter_secret: Zeroizing<[u8; kdf::NH]>,
}

fn suite_id(aead: Aead) -> [u8; 10] {
    let [k0, k1] = KEM_ID.to_be_bytes();
    let [d0, d1] = KDF_ID.to_be_bytes();
    let [a0, a1] = aead.id().to_be_bytes();
    [b'H', b'P', b'K', b'E', k0, k1, d0, d1, a0, a1]
}

/// `key_schedule_context` and `secret` of §5.1.
fn schedule_inputs(
    suite_id: &[u8],
    mode: u8,
    shared_secret: &[u8; 32],
    info: &[u8],
) -> ([u8; 1 + 2 * kdf::NH], Zeroizing<[u8; kdf::NH]>) {
    // psk_id and psk are empty outside the PSK modes.
    let psk_id_hash = kdf::labeled_extract(suite_id, b"", b"psk_id_hash", &[b""]);
    let info_hash = kdf::labeled_extract(suite_id, b"", b"info_hash", &[info]);
    let mut context = [0u8; 1 + 2 * kdf::NH];
    context[0] = mode;
    context[1..1 + kdf::NH].copy_from_slice(&psk_id_hash);
    context[1 + kdf::NH..].copy_from_slice(&info_hash);
    let secret = Zeroizing::new(kdf::labeled_extract(
        suite_id,
        shared_secret,
        b"secret",
        &[b""],
    ));
    (context, secret)
}

fn key_schedule(
    aead: Aead,
    mode: u8,
    shared_secret: &[u8; 32],
    info: &[u8],
) -> Result<KeySchedule, Error> {
    let suite_id = suite_id(aead);
    let (context, secret) = schedule_inputs(&suite_id, mode, shared_secret, info);
    let mut key = Zeroizing::new([0u8; 32]);
    let mut base_nonce = [0u8; NONCE_LEN];
    let mut exporter_secret = Zeroizing::new([0u8; kdf::NH]);
    kdf::labeled_expand(
        &suite_id,
        &secret,
        b"key",
        &[&context],
        &mut key[..aead.key_len()],
    )?;
    kdf::labeled_expand(
        &suite_id,
        &secret,
        b"base_nonce",
        &[&context],
        &mut base_nonce,
    )?;
    kdf::labeled_expand(
        &suite_id,
        &secret,
        b"exp",
        &[&context],
        &mut exporter_secret[..],
    )?;
    Ok(KeySchedule {
        aead,
        suite_id,
        key,
        base_nonce,
        exporter_secret,
    })
}
