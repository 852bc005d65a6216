//! The rats-TLS transport: TLS 1.3 whose certificates carry the attestation evidence, carrying
//! the application's TCP byte stream (spec: `rats-tls-protocol.md`).
//!
//! Two framings inside TLS, chosen by `rats_tls.multiplex` and negotiated by ALPN:
//! - raw (`rats-tls`): one TLS connection per application connection, the bytes verbatim,
//!   half-closes propagated;
//! - multiplexed (`h2`): one HTTP/2 `CONNECT` stream per application connection on pooled
//!   TLS connections.
//!
//! Attestation is checked after each handshake, before a single application byte crosses:
//! - [`ingress`]: `connect` → `handshake` → `verify_peer` → (`h2`: checkout a pooled
//!   connection, `CONNECT`) → `forward`;
//! - [`egress`]: `first_byte` → `handshake` → `verify_peer` → `dispatch` on the negotiated
//!   ALPN → `forward` to the service.
//!
//! [`security`] builds the TLS configurations and the verifier from `attest` / `verify`.

pub mod egress;
pub mod ingress;
pub mod security;

/// Copy buffer per direction: TLS records carry 16 KiB, and a few records per read keep the
/// syscall count of bulk transfers low without holding much memory per idle connection.
const COPY_BUFFER: usize = 64 * 1024;

/// The `:authority` every multiplexed stream carries; the egress ignores it (the destination
/// is fixed per TLS connection), and upstream uses the same constant as the SNI.
const H2_AUTHORITY: &str = "tng.internal";

/// Body of the egress's answer to a non-`CONNECT` request on a multiplexed connection, as
/// upstream words it.
const NOT_CONNECT: &str = "Protocol Error: the method should be CONNECT, may be a invalid client";
