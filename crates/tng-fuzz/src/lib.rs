//! Fuzz entry points: one function per decoder that reads bytes a peer controls. Each takes
//! arbitrary input, drives one of our decoders with it and must never panic; the only panics
//! here are assertions of properties every input must keep (a streaming decoder gives the
//! same answer however its input is split into reads, a decoded value re-encodes to itself).
//!
//! The cargo-fuzz targets in `fuzz/` are one-line wrappers around these functions, and
//! `tests/corpus.rs` replays the checked-in corpus through them, so CI catches a regression
//! without a fuzzer.
#![forbid(unsafe_code)]

mod aa_response;
mod as_token;
mod bhttp;
mod chunked;
mod config;
pub mod connect_stream;
pub mod fixtures;
mod key_config;
mod metadata;
mod ratstls_cert;
pub mod split;

pub use aa_response::aa_response;
pub use as_token::as_token;
pub use bhttp::bhttp;
pub use chunked::{chunked_request, chunked_response};
pub use config::config;
pub use connect_stream::connect_stream;
pub use key_config::key_config;
pub use metadata::metadata;
pub use ratstls_cert::ratstls_cert;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: [(&str, Target); 10] = [
    ("metadata", metadata),
    ("chunked_request", chunked_request),
    ("chunked_response", chunked_response),
    ("bhttp", bhttp),
    ("key_config", key_config),
    ("as_token", as_token),
    ("aa_response", aa_response),
    ("config", config),
    ("ratstls_cert", ratstls_cert),
    ("connect_stream", connect_stream),
];
