//! The rats-TLS transport: TLS 1.3 whose certificates carry the attestation evidence,
//! carrying the application's TCP byte stream.

pub mod egress;
pub mod ingress;
