//! Binding the TLS key to the evidence (spec §2.4): the only runtime-data claim is
//! `pubkey-hash` = standard base64 of the CBOR array `[1, bstr(SHA-256(SPKI DER))]` (1 = the
//! IANA id of SHA-256, hard-coded on both sides). The Attestation Agent receives SHA-384 of
//! the canonical JSON of `{"pubkey-hash": …}`, so the TEE report vouches for exactly this key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ciborium::value::{Integer, Value};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tng_attest::Claims;

/// The claim's name in the runtime data.
pub const PUBKEY_HASH: &str = "pubkey-hash";

/// The `pubkey-hash` value for a SubjectPublicKeyInfo (DER).
pub fn pubkey_hash(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let value = Value::Array(vec![
        Value::Integer(Integer::from(1u8)),
        Value::Bytes(digest.to_vec()),
    ]);
    let mut cbor = Vec::with_capacity(36);
    // Writing a two-item array into a Vec cannot fail.
    ciborium::into_writer(&value, &mut cbor).expect("CBOR into a Vec");
    STANDARD.encode(cbor)
}

/// The runtime-data claims the evidence of a certificate with this key must carry.
pub fn claims_for_spki(spki_der: &[u8]) -> Claims {
    let mut claims = Claims::new();
    claims.insert(PUBKEY_HASH.into(), Json::String(pubkey_hash(spki_der)));
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_cbor_array_of_id_and_digest() {
        let spki = b"any key";
        let decoded = STANDARD.decode(pubkey_hash(spki)).expect("base64");
        assert_eq!(&decoded[..4], &[0x82, 0x01, 0x58, 0x20]);
        assert_eq!(&decoded[4..], Sha256::digest(spki).as_slice());
        assert_eq!(pubkey_hash(spki).len(), 48);
    }
}
