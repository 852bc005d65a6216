//! Trust anchors for token signers: the Attestation Service's `/certificate` chain (every PEM
//! certificate) and/or `trusted_certs_paths` (the first PEM certificate of each file).

use std::path::Path;

use rustls_pki_types::{CertificateDer, TrustAnchor};

use super::VerifyError;

/// Every PEM `CERTIFICATE` block of `pem` (other blocks are skipped).
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut reader = pem;
    rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))
}

/// The first PEM certificate of the file at `path` (point it at the CA certificate).
pub fn first_pem_certificate(path: &Path) -> Result<CertificateDer<'static>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    pem_certificates(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no PEM certificate in the file", path.display()))
}

/// Parsed anchors plus the certificates they came from.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// Anchors from DER certificates (an empty list is allowed but trusts nothing).
    pub fn from_certs(certs: Vec<CertificateDer<'static>>) -> Result<Self, VerifyError> {
        let anchors = certs
            .iter()
            .enumerate()
            .map(|(i, cert)| {
                webpki::anchor_from_trusted_cert(cert)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|e| VerifyError::InvalidTrustAnchor(format!("certificate #{i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { certs, anchors })
    }

    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    pub(crate) fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}
