//! rats-TLS attested certificates, with no sockets of their own (spec:
//! `rats-tls-protocol.md` §2–§3):
//!
//! - [`evidence`]: the CBOR payload of extension 2.23.133.5.4.9 (`tag(T)[evidence, claims]`,
//!   the CoCo evidence map or an Attestation Service token);
//! - [`binding`]: the `pubkey-hash` claim that binds the evidence to the certificate's key;
//! - [`cert`]: building the self-signed P-256 certificate and parsing a peer's (self-signature,
//!   issuer = subject, evidence extraction);
//! - [`manager`]: [`CertManager`], which obtains evidence from the Attestation Agent for a
//!   fresh key, rotates the certificate every `refresh_interval` and hands the current one to
//!   rustls;
//! - [`peer`]: [`PeerVerifier`], which checks a peer's certificate after the handshake
//!   (binding, then the Attestation Service or the embedded token), caching verdicts per
//!   certificate with one verification in flight per certificate.
#![forbid(unsafe_code)]

pub mod binding;
pub mod cert;
mod error;
pub mod evidence;
pub mod manager;
pub mod peer;

pub use cert::{ParsedCert, DN_COMMON_NAME, DN_ORGANIZATION};
pub use error::Error;
pub use evidence::Evidence;
pub use manager::{CertManager, FixedCert, IssuedCert};
pub use peer::{PeerVerifier, Verdict};
pub use tng_attest::Model;

/// TCG DICE tagged evidence: the extension that carries the attestation.
pub const OID_TAGGED_EVIDENCE: &[u64] = &[2, 23, 133, 5, 4, 9];
/// TCG DICE endorsement manifest: written empty, for fidelity with upstream certificates.
pub const OID_ENDORSEMENT_MANIFEST: &[u64] = &[2, 23, 133, 5, 4, 2];
