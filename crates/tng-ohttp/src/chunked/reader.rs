//! The receiving half of chunked OHTTP, shared by the gateway (requests) and the client
//! (responses): `*(varint(len) ‖ ct) ‖ 0x00 ‖ final_ct` where the final chunk runs to EOF.

use bytes::{Buf, Bytes, BytesMut};

use super::cipher::Open;
use super::{OhttpError, MAX_CHUNK_CIPHERTEXT};
use crate::varint;

pub(crate) struct ChunkReader<O> {
    opener: O,
    /// Largest chunk ciphertext accepted (the final chunk included).
    max_chunk: usize,
    buf: BytesMut,
    /// `buf[..complete]` holds whole non-final chunks, already checked against the size limit.
    complete: usize,
    /// Offset in `buf` where the final chunk's ciphertext starts, once its marker arrived.
    final_at: Option<usize>,
    state: ReaderState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReaderState {
    Open,
    Finished,
    Failed,
}

impl<O: Open> ChunkReader<O> {
    pub(crate) fn new(opener: O) -> Self {
        ChunkReader {
            opener,
            max_chunk: MAX_CHUNK_CIPHERTEXT,
            buf: BytesMut::new(),
            complete: 0,
            final_at: None,
            state: ReaderState::Open,
        }
    }

    /// Lowers or raises the chunk size limit (default [`MAX_CHUNK_CIPHERTEXT`]).
    pub(crate) fn set_max_chunk(&mut self, max: usize) {
        self.max_chunk = max;
    }

    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), OhttpError> {
        self.check_open()?;
        self.buf.extend_from_slice(data);
        let scanned = self.scan();
        self.fail_on_err(scanned)
    }

    /// Advances over every chunk header now complete, so that an oversized chunk is refused
    /// as soon as its length is known rather than after buffering it.
    fn scan(&mut self) -> Result<(), OhttpError> {
        loop {
            if let Some(at) = self.final_at {
                let len = self.buf.len() - at;
                if len > self.max_chunk {
                    return Err(OhttpError::ChunkTooLarge {
                        len: len as u64,
                        max: self.max_chunk,
                    });
                }
                return Ok(());
            }
            let Some((len, hdr)) = varint::decode(&self.buf[self.complete..]) else {
                return Ok(());
            };
            if len == 0 {
                self.final_at = Some(self.complete + hdr);
                continue;
            }
            // Refused from the declared length alone: nothing is reserved for a chunk, the
            // buffer only ever holds bytes that arrived.
            if len > self.max_chunk as u64 {
                return Err(OhttpError::ChunkTooLarge {
                    len,
                    max: self.max_chunk,
                });
            }
            let end = self.complete + hdr + len as usize;
            if end > self.buf.len() {
                return Ok(());
            }
            self.complete = end;
        }
    }

    /// The next non-empty, non-final plaintext chunk, if one has fully arrived.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Bytes>, OhttpError> {
        if self.state == ReaderState::Finished {
            // `finish` already returned everything.
            return Ok(None);
        }
        self.check_open()?;
        let result = self.next_complete();
        self.fail_on_err(result)
    }

    fn next_complete(&mut self) -> Result<Option<Bytes>, OhttpError> {
        while self.complete > 0 {
            let (len, hdr) = varint::decode(&self.buf).ok_or(OhttpError::Truncated)?;
            let total = hdr + len as usize;
            if len == 0 || total > self.complete {
                return Err(OhttpError::Truncated);
            }
            self.buf.advance(hdr);
            let ct = self.buf.split_to(len as usize);
            self.complete -= total;
            if let Some(at) = self.final_at.as_mut() {
                *at -= total;
            }
            let pt = self.opener.open(ct, b"")?;
            if !pt.is_empty() {
                return Ok(Some(pt));
            }
        }
        Ok(None)
    }

    /// At end of input: returns every remaining plaintext byte, i.e. any complete chunks not
    /// yet taken with `next_chunk` followed by the opened final chunk.
    pub(crate) fn finish(&mut self) -> Result<Bytes, OhttpError> {
        self.check_open()?;
        let result = self.finish_inner();
        let result = self.fail_on_err(result);
        if result.is_ok() {
            self.state = ReaderState::Finished;
        }
        result
    }

    fn finish_inner(&mut self) -> Result<Bytes, OhttpError> {
        if self.final_at.is_none() {
            return Err(OhttpError::Truncated);
        }
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next_complete()? {
            out.extend_from_slice(&chunk);
        }
        let at = self.final_at.ok_or(OhttpError::Truncated)?;
        let ct = self.buf.split_off(at);
        if ct.len() < 16 {
            // Shorter than an AEAD tag: the final chunk was cut off.
            return Err(OhttpError::Truncated);
        }
        let pt = self.opener.open(ct, b"final")?;
        self.buf.clear();
        if out.is_empty() {
            return Ok(pt);
        }
        out.extend_from_slice(&pt);
        Ok(out.freeze())
    }

    fn check_open(&self) -> Result<(), OhttpError> {
        match self.state {
            ReaderState::Open => Ok(()),
            ReaderState::Finished => Err(OhttpError::Finished),
            ReaderState::Failed => Err(OhttpError::Failed),
        }
    }

    /// Any error leaves the AEAD sequence out of step with the sender, so the stream is dead.
    fn fail_on_err<T>(&mut self, result: Result<T, OhttpError>) -> Result<T, OhttpError> {
        if result.is_err() {
            self.state = ReaderState::Failed;
            self.buf = BytesMut::new();
        }
        result
    }
}
