//! The cleartext prefix of a tunnel request body: `u32 BE length ‖ protobuf
//! tng.ohttp.metadata.Metadata` (spec §4.1/§4.2). The prost structs are written by hand to
//! match upstream's `metadata.proto` field numbers.

use bytes::{Bytes, BytesMut};
use prost::Message;

/// Upstream's `METADATA_MAX_LEN` (32 MiB).
pub const METADATA_MAX_LEN: usize = 32 * 1024 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(oneof = "metadata::ClientAuth", tags = "1, 2")]
    pub client_auth: Option<metadata::ClientAuth>,
    #[prost(message, optional, tag = "3")]
    pub key_config_hint: Option<ServerKeyConfigHint>,
}

/// Nested types of [`Metadata`], laid out (and named) as prost would generate them.
#[allow(clippy::module_inception)]
pub mod metadata {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ClientAuth {
        #[prost(message, tag = "1")]
        NoAuth(super::NoAuth),
        #[prost(message, tag = "2")]
        AttestedPublicKey(super::AttestedPublicKey),
    }
}

pub use self::metadata::ClientAuth;

#[derive(Clone, PartialEq, prost::Message)]
pub struct NoAuth {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttestedPublicKey {
    /// The client's attestation token as serialized on the wire.
    #[prost(string, tag = "1")]
    pub attestation_result: String,
    /// The client's static X25519 public key (HPKE Auth mode sender key).
    #[prost(bytes = "vec", tag = "2")]
    pub pk_s: Vec<u8>,
    /// `"coco"` or `"ita"`; empty means legacy `coco`.
    #[prost(string, tag = "3")]
    pub as_provider: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerKeyConfigHint {
    /// Raw public key of the key config the request is encrypted to.
    #[prost(bytes = "vec", tag = "1")]
    pub public_key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata length {len} exceeds the limit of {max} bytes")]
    TooLong { len: u64, max: usize },
    #[error("failed to read metadata: {0}")]
    Read(String),
    #[error("failed to decode metadata: {0}")]
    Decode(String),
}

/// `u32 BE length ‖ protobuf`.
pub fn encode_frame(m: &Metadata) -> Bytes {
    let len = m.encoded_len();
    let mut out = BytesMut::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = m.encode(&mut out);
    out.freeze()
}

/// Reads the metadata frame from the start of a body, pushed in pieces.
pub struct MetadataReader {
    max_len: usize,
    buf: BytesMut,
    len: Option<usize>,
    done: bool,
}

impl MetadataReader {
    pub fn new(max_len: usize) -> MetadataReader {
        MetadataReader {
            max_len,
            buf: BytesMut::new(),
            len: None,
            done: false,
        }
    }

    /// Returns the metadata and the bytes that followed it once the frame is complete.
    /// The length is checked against the limit as soon as its 4 bytes are known, before
    /// anything more is buffered.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<(Metadata, Bytes)>, MetadataError> {
        if self.done {
            return Err(MetadataError::Read("metadata was already read".to_string()));
        }
        let mut data = data;
        let len = match self.len {
            Some(len) => len,
            None => {
                let take = (4 - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                let Ok(prefix) = <[u8; 4]>::try_from(&self.buf[..]) else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes(prefix);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= self.max_len)
                    .ok_or(MetadataError::TooLong {
                        len: u64::from(len),
                        max: self.max_len,
                    })?;
                self.buf.clear();
                self.len = Some(len);
                len
            }
        };
        let take = (len - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() < len {
            return Ok(None);
        }
        self.done = true;
        let metadata =
            Metadata::decode(&self.buf[..]).map_err(|e| MetadataError::Decode(e.to_string()))?;
        self.buf = BytesMut::new();
        Ok(Some((metadata, Bytes::copy_from_slice(&data[take..]))))
    }

    /// The body ended before the frame was complete.
    pub fn finish(&mut self) -> MetadataError {
        let detail = match self.len {
            None => format!(
                "unexpected end of body after {} of 4 length bytes",
                self.buf.len()
            ),
            Some(len) => format!(
                "unexpected end of body after {} of {len} metadata bytes",
                self.buf.len()
            ),
        };
        MetadataError::Read(detail)
    }
}

#[cfg(test)]
mod tests;
