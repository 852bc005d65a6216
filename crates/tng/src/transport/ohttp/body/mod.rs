//! Streaming glue between hyper bodies and the sans-IO codecs of `tng-ohttp`, shared by the
//! ingress (seals requests, opens responses) and the egress (opens requests, seals responses).
//!
//! Both directions have the same shape: plaintext HTTP message -> BHTTP bytes -> chunked OHTTP
//! ciphertext, and back. Each body frame becomes one sealed chunk as soon as it arrives, so
//! memory stays bounded and server-sent events are not delayed.

pub mod reader;
pub mod writer;

use bytes::Bytes;
use tng_ohttp::chunked::{
    ClientRequest, OhttpError, ResponseDecoder, ResponseEncoder, ServerRequest,
};

/// The receiving half of chunked OHTTP, whichever side we are on.
pub trait ChunkOpener: Send + 'static {
    fn push(&mut self, data: &[u8]) -> Result<(), OhttpError>;
    fn next_chunk(&mut self) -> Result<Option<Bytes>, OhttpError>;
    fn finish(&mut self) -> Result<Bytes, OhttpError>;
}

/// The sending half of chunked OHTTP, whichever side we are on.
pub trait ChunkSealer: Send + 'static {
    fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError>;
    fn seal_final(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError>;
}

macro_rules! opener {
    ($t:ty) => {
        impl ChunkOpener for $t {
            fn push(&mut self, data: &[u8]) -> Result<(), OhttpError> {
                <$t>::push(self, data)
            }
            fn next_chunk(&mut self) -> Result<Option<Bytes>, OhttpError> {
                <$t>::next_chunk(self)
            }
            fn finish(&mut self) -> Result<Bytes, OhttpError> {
                <$t>::finish(self)
            }
        }
    };
}

macro_rules! sealer {
    ($t:ty) => {
        impl ChunkSealer for $t {
            fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
                <$t>::seal_chunk(self, plaintext)
            }
            fn seal_final(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
                <$t>::seal_final(self, plaintext)
            }
        }
    };
}

opener!(ServerRequest);
opener!(ResponseDecoder);
sealer!(ClientRequest);
sealer!(ResponseEncoder);
