/// Why a certificate could not be built, or why a peer's certificate is refused. The messages
/// name the failed check (upstream's error names where it has one) so an operator reading the
/// log knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error("the certificate is not valid X.509 DER: {0}")]
    MalformedCertificate(String),
    #[error("CertIssuerMismatch: the certificate's issuer differs from its subject")]
    IssuerMismatch,
    #[error("UnknownSignatureAlgo: {0}")]
    UnknownSignatureAlgo(String),
    #[error("the certificate's self-signature does not verify with its own public key")]
    BadCertificateSignature,
    #[error(
        "CertExtractExtensionFailed: the certificate has no evidence extension 2.23.133.5.4.9 \
         (is the peer configured with `attest`?)"
    )]
    NoEvidence,
    #[error("the evidence extension is malformed: {0}")]
    MalformedEvidence(String),
    #[error(
        "the evidence extension has CBOR tag {0:#x}, which this implementation does not support"
    )]
    UnsupportedTag(u64),
    #[error("model mismatch: the verifier expects {expected}, the certificate carries {found}")]
    ModelMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "RuntimeDataMismatch: the evidence is bound to pubkey-hash {found}, \
         the certificate's public key has pubkey-hash {expected}"
    )]
    BindingMismatch { expected: String, found: String },
    #[error("{0}")]
    Attestation(#[from] tng_attest::Error),
    #[error("cannot build the attested certificate: {0}")]
    Build(String),
}

impl Error {
    /// The Attestation Service could not be reached: a temporary condition, not a verdict
    /// about the peer.
    pub fn is_service_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Attestation(tng_attest::Error::As(
                tng_attest::AsError::Unreachable { .. }
            ))
        )
    }
}
