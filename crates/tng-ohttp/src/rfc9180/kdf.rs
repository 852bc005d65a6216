//! The labeled KDF of RFC 9180 §4 over HKDF-SHA256.
//!
//! LabeledExtract is HMAC-SHA256 (HKDF-Extract is defined as exactly that), because the key
//! schedule concatenates raw extract outputs (`psk_id_hash`, `info_hash`) and aws-lc-rs' HKDF
//! keeps its PRK opaque. LabeledExpand is aws-lc-rs' HKDF-Expand.

use aws_lc_rs::{hkdf, hmac};

use super::Error;

/// `Nh` of HKDF-SHA256.
pub(crate) const NH: usize = 32;

const VERSION: &[u8] = b"HPKE-v1";

/// Most pieces any caller passes as `info` (kem_context has three).
const MAX_INFO_PIECES: usize = 4;

/// `Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)`, where `ikm` is the concatenation of
/// its pieces.
pub(crate) fn labeled_extract(
    suite_id: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[&[u8]],
) -> [u8; NH] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(VERSION);
    ctx.update(suite_id);
    ctx.update(label);
    for piece in ikm {
        ctx.update(piece);
    }
    let mut prk = [0u8; NH];
    prk.copy_from_slice(ctx.sign().as_ref());
    prk
}

/// `Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L)` into `out`
/// (`L = out.len()`), where `info` is the concatenation of its pieces.
pub(crate) fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8; NH],
    label: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), Error> {
    let len = u16::try_from(out.len()).map_err(|_| Error::Kdf)?;
    if info.len() > MAX_INFO_PIECES {
        return Err(Error::Kdf);
    }
    let len_bytes = len.to_be_bytes();
    let mut pieces: [&[u8]; 4 + MAX_INFO_PIECES] = [&[]; 4 + MAX_INFO_PIECES];
    pieces[0] = &len_bytes;
    pieces[1] = VERSION;
    pieces[2] = suite_id;
    pieces[3] = label;
    pieces[4..4 + info.len()].copy_from_slice(info);
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk);
    prk.expand(&pieces[..4 + info.len()], OutLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Error::Kdf)
}

/// An HKDF-Expand output length for aws-lc-rs' `KeyType`.
pub(crate) struct OutLen(pub(crate) usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}
