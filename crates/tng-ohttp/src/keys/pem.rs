//! PKCS#8 (RFC 5958 / RFC 8410) PEM encoding of X25519 private keys, the `file` key source.

use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode, Encode, EncodePem};
use pkcs8::{AlgorithmIdentifierRef, ObjectIdentifier, PrivateKeyInfo};

use super::server_key::KeyLoadError;

const PEM_LABEL: &str = "PRIVATE KEY";
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");

/// Algorithms someone may plausibly point the key file at by mistake, named in the error.
fn oid_name(oid: &str) -> Option<&'static str> {
    match oid {
        "1.3.101.110" => Some("X25519"),
        "1.3.101.111" => Some("X448"),
        "1.3.101.112" => Some("Ed25519"),
        "1.3.101.113" => Some("Ed448"),
        "1.2.840.113549.1.1.1" => Some("RSA"),
        "1.2.840.10045.2.1" => Some("EC"),
        _ => None,
    }
}

pub(super) struct ParsedKey {
    pub secret: [u8; 32],
    /// Present in PKCS#8 v2 (`OneAsymmetricKey` with `publicKey`).
    pub public_key: Option<[u8; 32]>,
}

pub(super) fn decode(pem: &str) -> Result<ParsedKey, KeyLoadError> {
    // Tolerate explanatory text before the block (as `openssl` tooling sometimes writes).
    let start = pem
        .find("-----BEGIN")
        .ok_or_else(|| KeyLoadError::InvalidPem("no \"-----BEGIN\" line found".to_string()))?;
    let (label, der) = pkcs8::der::pem::decode_vec(pem[start..].trim_end().as_bytes())
        .map_err(|e| KeyLoadError::InvalidPem(e.to_string()))?;
    if label != PEM_LABEL {
        return Err(KeyLoadError::WrongPemLabel(label.to_string()));
    }
    let info = PrivateKeyInfo::from_der(&der)
        .map_err(|e| KeyLoadError::InvalidPkcs8PrivateKey(e.to_string()))?;
    if info.algorithm.oid != OID_X25519 {
        let oid = info.algorithm.oid.to_string();
        let name = oid_name(&oid).unwrap_or("unknown algorithm").to_string();
        return Err(KeyLoadError::UnsupportedAlgorithm { oid, name });
    }
    if info.algorithm.parameters.is_some() {
        // RFC 8410 §3: the parameters MUST be absent.
        return Err(KeyLoadError::InvalidPkcs8PrivateKey(
            "X25519 algorithm identifier must not carry parameters".to_string(),
        ));
    }
    // RFC 8410 §7: the privateKey OCTET STRING wraps a CurvePrivateKey OCTET STRING.
    let inner = OctetStringRef::from_der(info.private_key)
        .map_err(|e| KeyLoadError::InvalidPkcs8PrivateKey(format!("CurvePrivateKey: {e}")))?;
    let secret: [u8; 32] = inner.as_bytes().try_into().map_err(|_| {
        KeyLoadError::InvalidPkcs8PrivateKey(format!(
            "X25519 private key must be 32 bytes, found {}",
            inner.as_bytes().len()
        ))
    })?;
    let public_key = match info.public_key {
        None => None,
        Some(pk) => Some(pk.try_into().map_err(|_| {
            KeyLoadError::InvalidPkcs8PrivateKey(format!(
                "X25519 public key must be 32 bytes, found {}",
                pk.len()
            ))
        })?),
    };
    Ok(ParsedKey { secret, public_key })
}

pub(super) fn encode(secret: &[u8; 32]) -> Result<String, KeyLoadError> {
    let inner = OctetStringRef::new(secret)
        .and_then(|o| o.to_der())
        .map_err(|e| KeyLoadError::InvalidPkcs8PrivateKey(e.to_string()))?;
    let info = PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: OID_X25519,
            parameters: None,
        },
        &inner,
    );
    info.to_pem(LineEnding::LF)
        .map_err(|e| KeyLoadError::InvalidPkcs8PrivateKey(e.to_string()))
}
