//! A rats-TLS peer's certificate, as it arrives in the TLS handshake: the X.509 DER, the
//! evidence extension's tagged CBOR inside it, the `pubkey-hash` binding.

use std::sync::OnceLock;

use rustls::crypto::WebPkiSupportedAlgorithms;
use tng_ratstls::{Evidence, ParsedCert};

fn algorithms() -> &'static WebPkiSupportedAlgorithms {
    static ALGORITHMS: OnceLock<WebPkiSupportedAlgorithms> = OnceLock::new();
    ALGORITHMS.get_or_init(|| {
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
    })
}

/// Input: one selector byte, then the rest. Even selector: the rest is a whole certificate
/// (DER), parsed and checked as a verifier does before it asks the Attestation Service.
/// Odd selector: the rest is the evidence extension's content alone; the fuzzer rarely forges
/// a valid self-signature, so this reaches the CBOR decoder with every input.
///
/// Property: decoded evidence re-encodes to bytes that decode to the same evidence.
pub fn ratstls_cert(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        if let Ok(cert) = ParsedCert::parse(rest, algorithms()) {
            let _ = cert.check_binding();
            round_trip(&cert.evidence);
        }
    } else if let Ok(evidence) = Evidence::decode(rest) {
        round_trip(&evidence);
    }
}

fn round_trip(evidence: &Evidence) {
    let encoded = evidence.encode().expect("decoded evidence must re-encode");
    let again = Evidence::decode(&encoded).expect("re-encoded evidence must decode");
    assert_eq!(&again, evidence);
}
