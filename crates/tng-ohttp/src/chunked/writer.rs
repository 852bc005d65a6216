//! The sending half of chunked OHTTP, shared by the client (requests) and the gateway
//! (responses).

use bytes::{BufMut, Bytes, BytesMut};

use super::cipher::Seal;
use super::{OhttpError, MAX_CHUNK_PLAINTEXT};
use crate::varint;

pub(crate) struct ChunkWriter<S> {
    sealer: S,
    done: bool,
}

impl<S: Seal> ChunkWriter<S> {
    pub(crate) fn new(sealer: S) -> Self {
        ChunkWriter {
            sealer,
            done: false,
        }
    }

    /// Seals `plaintext` as one or more non-final chunks. Nothing is written for an empty
    /// plaintext: an empty chunk would only cost a tag.
    pub(crate) fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
        if self.done {
            return Err(OhttpError::Finished);
        }
        let mut out = BytesMut::new();
        let result = self.seal_pieces(plaintext, &mut out);
        self.done = result.is_err();
        result.map(|()| out.freeze())
    }

    /// Seals `plaintext` as the final chunk (`0x00 ‖ ct`, aad "final"), preceded by non-final
    /// chunks when it exceeds the per-chunk limit. No chunk may follow.
    pub(crate) fn seal_final(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
        if self.done {
            return Err(OhttpError::Finished);
        }
        self.done = true;
        let mut tail_len = plaintext.len() % MAX_CHUNK_PLAINTEXT;
        if tail_len == 0 && !plaintext.is_empty() {
            tail_len = MAX_CHUNK_PLAINTEXT;
        }
        let (lead, tail) = plaintext.split_at(plaintext.len() - tail_len);
        let mut out = BytesMut::new();
        self.seal_pieces(lead, &mut out)?;
        let ct = self.sealer.seal(tail, b"final")?;
        out.reserve(1 + ct.len());
        out.put_u8(0);
        out.extend_from_slice(&ct);
        Ok(out.freeze())
    }

    fn seal_pieces(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), OhttpError> {
        for piece in plaintext.chunks(MAX_CHUNK_PLAINTEXT) {
            let ct = self.sealer.seal(piece, b"")?;
            out.reserve(varint::encoded_len(ct.len() as u64) + ct.len());
            varint::encode(ct.len() as u64, out);
            out.extend_from_slice(&ct);
        }
        Ok(())
    }
}
