//! The attested certificate (spec §2.2): self-signed, ecdsa-with-SHA256 over a fresh P-256
//! key, subject = issuer = `O=Inclavare Containers, CN=TNG`, serial 42, valid 6 h from its
//! generation, the evidence in extension 2.23.133.5.4.9 and an empty 2.23.133.5.4.2.
//!
//! Reading a peer's certificate follows upstream's verifier order (§2.5): DER, issuer =
//! subject, the self-signature (ecdsa-with-SHA256 on P-256, or RSA PKCS#1), the first
//! evidence extension, its CBOR. Validity dates, key usage, serial and subject text are not
//! looked at: freshness comes from the attestation token, not from the certificate.

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{alg_id, AlgorithmIdentifier, CertificateDer};
use sha2::{Digest, Sha256};
use tng_attest::Claims;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::binding::{claims_for_spki, PUBKEY_HASH};
use crate::evidence::Evidence;
use crate::{Error, OID_ENDORSEMENT_MANIFEST, OID_TAGGED_EVIDENCE};

pub const DN_ORGANIZATION: &str = "Inclavare Containers";
pub const DN_COMMON_NAME: &str = "TNG";
/// Upstream's constant serial number.
const SERIAL: u8 = 42;
/// notAfter − notBefore, as upstream (never checked by peers).
pub const VALIDITY: Duration = Duration::from_secs(6 * 3600);

/// A fresh P-256 key for one certificate.
pub fn generate_key() -> Result<KeyPair, Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| Error::Build(e.to_string()))
}

/// The DER SubjectPublicKeyInfo of `key`, as it appears in the certificate.
pub fn spki_der(key: &KeyPair) -> Vec<u8> {
    use rcgen::PublicKeyData;
    key.subject_public_key_info()
}

/// The self-signed certificate of `key` carrying `evidence` (which must be bound to `key`).
pub fn build(
    key: &KeyPair,
    evidence: &Evidence,
    not_before: SystemTime,
) -> Result<CertificateDer<'static>, Error> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, DN_ORGANIZATION);
    name.push(DnType::CommonName, DN_COMMON_NAME);
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from(vec![SERIAL]));
    params.not_before = not_before.into();
    params.not_after = (not_before + VALIDITY).into();
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.custom_extensions = vec![
        CustomExtension::from_oid_content(OID_TAGGED_EVIDENCE, evidence.encode()?),
        CustomExtension::from_oid_content(OID_ENDORSEMENT_MANIFEST, Vec::new()),
    ];
    let cert = params
        .self_signed(key)
        .map_err(|e| Error::Build(e.to_string()))?;
    Ok(cert.der().clone())
}

/// A peer's certificate that passed the structural checks, with its evidence.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    /// SHA-256 of the whole DER (the verdict cache key).
    pub sha256: [u8; 32],
    /// The DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub subject: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// e.g. `ecdsa-with-SHA256`.
    pub signature_algorithm: &'static str,
    pub evidence: Evidence,
}

/// The signature algorithms a peer's certificate may be signed with, as upstream accepts
/// them: ECDSA P-256 with SHA-256, RSA PKCS#1 with SHA-256/384/512.
const ACCEPTED: [(&str, &str, AlgorithmIdentifier, AlgorithmIdentifier); 4] = [
    (
        "1.2.840.10045.4.3.2",
        "ecdsa-with-SHA256",
        alg_id::ECDSA_SHA256,
        alg_id::ECDSA_P256,
    ),
    (
        "1.2.840.113549.1.1.11",
        "sha256WithRSAEncryption",
        alg_id::RSA_PKCS1_SHA256,
        alg_id::RSA_ENCRYPTION,
    ),
    (
        "1.2.840.113549.1.1.12",
        "sha384WithRSAEncryption",
        alg_id::RSA_PKCS1_SHA384,
        alg_id::RSA_ENCRYPTION,
    ),
    (
        "1.2.840.113549.1.1.13",
        "sha512WithRSAEncryption",
        alg_id::RSA_PKCS1_SHA512,
        alg_id::RSA_ENCRYPTION,
    ),
];
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl ParsedCert {
    /// Parses `der` and runs every check that needs no Attestation Service: issuer = subject,
    /// the self-signature (with `algorithms`, the TLS provider's verifiers), the evidence
    /// extension and its CBOR.
    pub fn parse(der: &[u8], algorithms: &WebPkiSupportedAlgorithms) -> Result<Self, Error> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::MalformedCertificate(e.to_string()))?;
        if cert.issuer().as_raw() != cert.subject().as_raw() {
            return Err(Error::IssuerMismatch);
        }
        let signature_algorithm = verify_self_signature(&cert, algorithms)?;
        let evidence_oid = Oid::from(OID_TAGGED_EVIDENCE)
            .map_err(|_| Error::MalformedCertificate("evidence OID".into()))?;
        let extension = cert
            .iter_extensions()
            .find(|ext| ext.oid == evidence_oid)
            .ok_or(Error::NoEvidence)?;
        let evidence = Evidence::decode(extension.value)?;
        let validity = cert.validity();
        Ok(Self {
            sha256: Sha256::digest(der).into(),
            spki: cert.public_key().raw.to_vec(),
            subject: cert.subject().to_string(),
            not_before: validity.not_before.to_datetime().into(),
            not_after: validity.not_after.to_datetime().into(),
            signature_algorithm,
            evidence,
        })
    }

    /// The runtime-data claims this certificate's key requires (`{"pubkey-hash": …}`). For
    /// background-check evidence, also checks that the evidence carries exactly that claim;
    /// a token's claims are checked when the token is verified.
    pub fn check_binding(&self) -> Result<Claims, Error> {
        let expected = claims_for_spki(&self.spki);
        if let Evidence::Coco(evidence) = &self.evidence {
            let found = evidence
                .runtime_data_claims()
                .ok()
                .and_then(|claims| claims.get(PUBKEY_HASH).cloned());
            if found.as_ref() != expected.get(PUBKEY_HASH) {
                return Err(Error::BindingMismatch {
                    expected: expected[PUBKEY_HASH]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    found: match found {
                        Some(serde_json::Value::String(s)) => s,
                        Some(other) => other.to_string(),
                        None => "(none)".into(),
                    },
                });
            }
        }
        Ok(expected)
    }
}

fn verify_self_signature(
    cert: &X509Certificate<'_>,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<&'static str, Error> {
    let signature_oid = cert.signature_algorithm.algorithm.to_id_string();
    let spki = cert.public_key();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let key_ok = |want: &AlgorithmIdentifier| {
        if *want == alg_id::ECDSA_P256 {
            key_oid == EC_PUBLIC_KEY && curve.as_deref() == Some(P256)
        } else {
            key_oid == RSA_ENCRYPTION
        }
    };
    let unknown = || {
        Error::UnknownSignatureAlgo(format!(
            "signature {signature_oid} with a {key_oid}{} key",
            curve
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ))
    };
    let (_, name, sig_id, key_id) = ACCEPTED
        .iter()
        .find(|(oid, _, _, key_id)| *oid == signature_oid && key_ok(key_id))
        .ok_or_else(unknown)?;
    let verifier = algorithms
        .all
        .iter()
        .find(|alg| alg.signature_alg_id() == *sig_id && alg.public_key_alg_id() == *key_id)
        .ok_or_else(unknown)?;
    verifier
        .verify_signature(
            &spki.subject_public_key.data,
            cert.tbs_certificate.as_ref(),
            &cert.signature_value.data,
        )
        .map_err(|_| Error::BadCertificateSignature)?;
    Ok(name)
}
