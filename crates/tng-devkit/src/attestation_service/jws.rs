//! Compact JWS (RFC 7515) assembly around the RustCrypto signers: RS384 for challenge tokens,
//! ES256 for attestation tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::{SignatureEncoding, Signer, Verifier};
use serde_json::Value;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// ES256: ECDSA P-256 with SHA-256, signature as the 64-byte `r ‖ s` (RFC 7518 §3.4).
pub fn sign_es256(header: &Value, claims: &Value, key: &p256::ecdsa::SigningKey) -> String {
    let input = signing_input(header, claims);
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

/// RS384: RSASSA-PKCS1-v1_5 with SHA-384.
pub fn sign_rs384(header: &Value, claims: &Value, key: &rsa::RsaPrivateKey) -> String {
    let input = signing_input(header, claims);
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(key.clone());
    let signature = signer.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_vec()))
}

/// Checks an RS384 compact JWS and returns its claims; says why it was refused otherwise.
pub fn verify_rs384(token: &str, key: &rsa::RsaPublicKey) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let header: Value = decode_json(header, "header")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS384") {
        return Err("header alg is not RS384".into());
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature is not base64url".to_string())?;
    let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
        .map_err(|_| "malformed signature".to_string())?;
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key.clone());
    let input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    verifier
        .verify(&token.as_bytes()[..input_len], &signature)
        .map_err(|_| "signature does not verify".to_string())?;
    decode_json(claims, "claims")
}

fn decode_json(part: &str, what: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("{what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("{what} is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rs384_round_trip_and_tamper() {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("key");
        let token = sign_rs384(
            &json!({"typ": "JWT", "alg": "RS384"}),
            &json!({"nonce": "n"}),
            &key,
        );
        let claims = verify_rs384(&token, &key.to_public_key()).expect("verifies");
        assert_eq!(claims, json!({"nonce": "n"}));
        let other = sign_rs384(
            &json!({"typ": "JWT", "alg": "RS384"}),
            &json!({"nonce": "m"}),
            &key,
        );
        let forged = format!(
            "{}.{}",
            &other[..other.rfind('.').expect("dot")],
            token.rsplit('.').next().expect("sig")
        );
        assert!(verify_rs384(&forged, &key.to_public_key()).is_err());
    }

    #[test]
    fn es256_signature_verifies_with_the_public_key() {
        let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let token = sign_es256(&json!({"alg": "ES256"}), &json!({"a": 1}), &key);
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).expect("b64"))
            .expect("64 bytes");
        key.verifying_key()
            .verify(input.as_bytes(), &sig)
            .expect("valid signature");
    }
}
