//! TNG's OHTTP protocol layer: key configurations and key rotation, chunked OHTTP
//! (RFC 9458 + draft-ietf-ohai-chunked-ohttp as upstream's library frames it), Binary HTTP
//! (RFC 9292), the tunnel metadata frame, path rewriting and header passthrough.
//!
//! Everything here is sans-IO: callers push received bytes in and take encoded bytes out, so
//! the same code serves the ingress and the egress and can be tested byte by byte.
#![forbid(unsafe_code)]

pub mod api;
pub mod bhttp;
pub mod chunked;
pub mod key_ring;
pub mod keys;
pub mod metadata;
pub mod passthrough;
pub mod path_rewrite;
pub mod rfc9180;

mod varint;
