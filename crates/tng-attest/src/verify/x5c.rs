//! Endorsement of an embedded JWK by its `x5c` chain: the leaf's SubjectPublicKeyInfo must be
//! the JWK's key and the leaf must chain to a trust anchor (rustls-webpki, TLS client-auth
//! usage, so a leaf without EKU passes; no revocation).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use spki::der::Decode;
use spki::ObjectIdentifier;

use super::anchors::TrustAnchors;
use super::jws::{Curve, Jwk, PublicKey};
use super::VerifyError;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// Chain signature algorithms accepted: ECDSA P-256/P-384 with SHA-256/384 and RSA PKCS#1
/// 2048–8192 with SHA-256/384/512.
static CHAIN_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
];

/// One `x5c` entry: base64url without padding (what openanolis emits) or standard base64
/// (RFC 7517, trustee(coco)), with any line breaks removed.
pub(crate) fn decode_entry(entry: &str) -> Option<Vec<u8>> {
    let compact: String = entry.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    URL_SAFE_LENIENT
        .decode(&compact)
        .or_else(|_| STANDARD_LENIENT.decode(&compact))
        .ok()
}

pub(crate) fn endorse(
    jwk: &Jwk,
    key: &PublicKey,
    anchors: &TrustAnchors,
    now: UnixTime,
) -> Result<(), VerifyError> {
    let entries = jwk
        .x5c
        .as_deref()
        .filter(|chain| !chain.is_empty())
        .ok_or(VerifyError::MissingX5c)?;
    let chain = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            decode_entry(entry)
                .map(CertificateDer::from)
                .ok_or_else(|| VerifyError::InvalidX5c(format!("entry {i} is not base64")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (leaf, intermediates) = chain.split_first().ok_or(VerifyError::MissingX5c)?;
    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| VerifyError::InvalidX5c(format!("the leaf certificate: {e}")))?;
    let spki = end_entity.subject_public_key_info();
    if !spki_matches(spki.as_ref(), key)? {
        return Err(VerifyError::JwkCertificateMismatch);
    }
    end_entity
        .verify_for_usage(
            CHAIN_ALGORITHMS,
            anchors.anchors(),
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| VerifyError::SignerNotTrusted(e.to_string()))
}

/// Whether the DER SubjectPublicKeyInfo `spki_der` holds `key`.
fn spki_matches(spki_der: &[u8], key: &PublicKey) -> Result<bool, VerifyError> {
    let invalid = |what: &str| VerifyError::InvalidX5c(format!("the leaf public key: {what}"));
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|_| invalid("not a SubjectPublicKeyInfo"))?;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| invalid("not a whole number of bytes"))?;
    let oid = spki.algorithm.oid;
    Ok(match key {
        PublicKey::Ec { curve, point } => {
            if oid != ID_EC_PUBLIC_KEY {
                return Ok(false);
            }
            let named = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let cert_curve = match named {
                Some(c) if c == SECP256R1 => Curve::P256,
                Some(c) if c == SECP384R1 => Curve::P384,
                Some(c) if c == SECP521R1 => Curve::P521,
                _ => return Ok(false),
            };
            cert_curve == *curve && bits == point.as_slice()
        }
        PublicKey::Rsa { n, e } => {
            if oid != RSA_ENCRYPTION {
                return Ok(false);
            }
            let rsa = pkcs1::RsaPublicKey::from_der(bits)
                .map_err(|_| invalid("not an RSA public key"))?;
            rsa.modulus.as_bytes() == n.as_slice() && rsa.public_exponent.as_bytes() == e.as_slice()
        }
        PublicKey::Ed25519 { x } => oid == ID_ED25519 && bits == x.as_slice(),
    })
}
