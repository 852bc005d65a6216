//! The JWS compact form of a token: header with its embedded JWK, the public key the JWK
//! describes, and signature verification with aws-lc-rs.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::VerifyError;

/// The three parts of a compact JWS, decoded where needed.
pub(crate) struct Jws<'t> {
    /// `base64url(header) "." base64url(payload)`: the signed bytes.
    pub(crate) signing_input: &'t str,
    pub(crate) header: Header,
    pub(crate) header_json: Map<String, Value>,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) jwk: Option<Jwk>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwk {
    pub(crate) kty: String,
    #[serde(default)]
    pub(crate) alg: Option<String>,
    #[serde(default)]
    pub(crate) crv: Option<String>,
    #[serde(default)]
    pub(crate) x: Option<String>,
    #[serde(default)]
    pub(crate) y: Option<String>,
    #[serde(default)]
    pub(crate) n: Option<String>,
    #[serde(default)]
    pub(crate) e: Option<String>,
    #[serde(default)]
    pub(crate) x5c: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    /// Field size in bytes.
    pub(crate) fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// The key a JWK describes, in the encodings aws-lc-rs and SPKI comparison use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Uncompressed point `0x04 ‖ x ‖ y`, coordinates left-padded to the field size.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    /// Big-endian modulus and exponent without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

pub(crate) fn parse(token: &str) -> Result<Jws<'_>, VerifyError> {
    let malformed = |what: &str| VerifyError::Malformed(what.to_owned());
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not a compact JWS (three dot-separated parts)"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| malformed("the header is not base64url"))?;
    let header_json: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| malformed("the header is not a JSON object"))?;
    let header: Header = serde_json::from_value(Value::Object(header_json.clone()))
        .map_err(|e| VerifyError::Malformed(format!("the header is invalid: {e}")))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| malformed("the payload is not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| malformed("the signature is not base64url"))?;
    Ok(Jws {
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        header,
        header_json,
        payload,
        signature,
    })
}

fn b64url_member(value: &Option<String>, name: &str) -> Result<Vec<u8>, VerifyError> {
    let text = value
        .as_deref()
        .ok_or_else(|| VerifyError::InvalidJwk(format!("missing {name}")))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| VerifyError::InvalidJwk(format!("{name} is not base64url")))
}

fn left_pad(bytes: Vec<u8>, size: usize, name: &str) -> Result<Vec<u8>, VerifyError> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    if significant.len() > size {
        return Err(VerifyError::InvalidJwk(format!(
            "{name} is longer than the curve's field"
        )));
    }
    let mut out = vec![0; size - significant.len()];
    out.extend_from_slice(significant);
    Ok(out)
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

impl Jwk {
    pub(crate) fn public_key(&self) -> Result<PublicKey, VerifyError> {
        match self.kty.as_str() {
            "EC" => {
                let crv = self.crv.as_deref().unwrap_or_default();
                let curve = Curve::from_name(crv).ok_or_else(|| {
                    VerifyError::InvalidJwk(format!("unsupported EC curve {crv:?}"))
                })?;
                let x = left_pad(b64url_member(&self.x, "x")?, curve.size(), "x")?;
                let y = left_pad(b64url_member(&self.y, "y")?, curve.size(), "y")?;
                let mut point = Vec::with_capacity(1 + 2 * curve.size());
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok(PublicKey::Ec { curve, point })
            }
            "RSA" => Ok(PublicKey::Rsa {
                n: strip_zeros(&b64url_member(&self.n, "n")?),
                e: strip_zeros(&b64url_member(&self.e, "e")?),
            }),
            "OKP" if self.crv.as_deref() == Some("Ed25519") => Ok(PublicKey::Ed25519 {
                x: b64url_member(&self.x, "x")?,
            }),
            other => Err(VerifyError::InvalidJwk(format!(
                "unsupported key type {other:?}"
            ))),
        }
    }
}

enum Verification {
    Ecdsa(Curve, &'static signature::EcdsaVerificationAlgorithm),
    Rsa(&'static signature::RsaParameters),
    Ed25519,
}

fn verification_for(alg: &str) -> Result<Verification, VerifyError> {
    Ok(match alg {
        "ES256" => Verification::Ecdsa(Curve::P256, &signature::ECDSA_P256_SHA256_FIXED),
        "ES384" => Verification::Ecdsa(Curve::P384, &signature::ECDSA_P384_SHA384_FIXED),
        "RS256" => Verification::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Verification::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Verification::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Verification::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => Verification::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => Verification::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
        "EdDSA" => Verification::Ed25519,
        other => return Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
    })
}

/// Checks that `alg` is usable and fits `key` (before any certificate work).
pub(crate) fn check_algorithm(alg: &str, key: &PublicKey) -> Result<(), VerifyError> {
    let fits = match (verification_for(alg)?, key) {
        (Verification::Ecdsa(want, _), PublicKey::Ec { curve, .. }) => want == *curve,
        (Verification::Rsa(_), PublicKey::Rsa { .. }) => true,
        (Verification::Ed25519, PublicKey::Ed25519 { .. }) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(VerifyError::InvalidJwk(format!(
            "the key does not fit algorithm {alg}"
        )))
    }
}

/// Verifies `signature` over `message` with `key` under `alg`.
pub(crate) fn verify_signature(
    alg: &str,
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    check_algorithm(alg, key)?;
    let result = match (verification_for(alg)?, key) {
        (Verification::Ecdsa(_, algorithm), PublicKey::Ec { point, .. }) => {
            UnparsedPublicKey::new(algorithm, point).verify(message, signature)
        }
        (Verification::Rsa(params), PublicKey::Rsa { n, e }) => {
            RsaPublicKeyComponents { n, e }.verify(params, message, signature)
        }
        (Verification::Ed25519, PublicKey::Ed25519 { x }) => {
            UnparsedPublicKey::new(&signature::ED25519, x).verify(message, signature)
        }
        _ => return Err(VerifyError::BadSignature),
    };
    result.map_err(|_| VerifyError::BadSignature)
}
