//! The sending half of chunked OHTTP, shared by the client (requests) and the gateway
//! (responses).

use bytes::{BufMut, Bytes, BytesMut};

use super::cipher::Seal;
use super::{OhttpError, MAX_CHUNK_PLAINTEXT};
use crate::rfc9180::TAG_LEN;
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
        let mut out = BytesMut::with_capacity(framed_len(lead) + 1 + tail.len() + TAG_LEN);
        self.seal_pieces(lead, &mut out)?;
        out.put_u8(0);
        self.sealer.seal_into(tail, b"final", &mut out)?;
        Ok(out.freeze())
    }

    fn seal_pieces(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), OhttpError> {
        out.reserve(framed_len(plaintext));
        for piece in plaintext.chunks(MAX_CHUNK_PLAINTEXT) {
            varint::encode((piece.len() + TAG_LEN) as u64, out);
            self.sealer.seal_into(piece, b"", out)?;
        }
        Ok(())
    }
}

/// Bytes that `plaintext` takes as non-final chunks: each piece's length prefix, ciphertext
/// and tag.
fn framed_len(plaintext: &[u8]) -> usize {
    plaintext
        .chunks(MAX_CHUNK_PLAINTEXT)
        .map(|piece| {
            let ct = piece.len() + TAG_LEN;
            varint::encoded_len(ct as u64) + ct
        })
        .sum()
}
