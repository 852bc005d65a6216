//! Chunked OHTTP (RFC 9458 with draft-ietf-ohai-chunked-ohttp framing), exactly as upstream
//! TNG's ohttp library frames it (spec §4.3/§4.4).
//!
//! Request body: `header(7) ‖ enc(32) ‖ *(varint(len) ‖ ct) ‖ 0x00 ‖ final_ct`, sealed with the
//! HPKE context (info `"message/bhttp chunked request" ‖ 0x00 ‖ header`), aad `""` per chunk and
//! `"final"` for the last one, which extends to the end of the body.
//! Response body: `response_nonce(Ne) ‖ chunks` with the same framing, sealed with an AEAD
//! keyed from the HPKE exporter.

mod cipher;
mod error;
mod header;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use error::OhttpError;
pub use header::RequestHeader;

use cipher::{HpkeReceiver, HpkeSender, ResponseCipher};
use reader::ChunkReader;
use writer::ChunkWriter;

use crate::keys::{Aead, KeyConfig, SenderKey, ServerKey, KDF_HKDF_SHA256, KEM_X25519_HKDF_SHA256};
use crate::rfc9180::PrivateKey;

/// Largest plaintext in one chunk (2^14), as in upstream's library.
pub const MAX_CHUNK_PLAINTEXT: usize = 16384;
/// Largest ciphertext a receiver accepts in one chunk: the plaintext limit plus the AEAD tag.
pub const MAX_CHUNK_CIPHERTEXT: usize = MAX_CHUNK_PLAINTEXT + 16;

/// The client side of one request: seals the request body and decodes the response.
pub struct ClientRequest {
    header: Bytes,
    aead: Aead,
    enc: [u8; 32],
    response_secret: Vec<u8>,
    writer: ChunkWriter<HpkeSender>,
}

impl ClientRequest {
    /// HPKE Base mode with the config's first AEAD (what upstream's client picks).
    pub fn new(config: &KeyConfig) -> Result<ClientRequest, OhttpError> {
        Self::new_with_rng(config, &mut rand::rngs::OsRng)
    }

    /// HPKE Auth mode: the gateway learns `sender_secret`'s public key from the metadata and
    /// only decrypts if the request was sealed with this key (client attestation). Derives
    /// the public key on every call; [`ClientRequest::new_auth_with_key`] uses the one a
    /// [`SenderKey`] keeps.
    pub fn new_auth(
        config: &KeyConfig,
        sender_secret: &[u8; 32],
    ) -> Result<ClientRequest, OhttpError> {
        Self::new_auth_with_rng(config, sender_secret, &mut rand::rngs::OsRng)
    }

    /// HPKE Auth mode with the ingress's static key.
    pub fn new_auth_with_key(
        config: &KeyConfig,
        sender: &SenderKey,
    ) -> Result<ClientRequest, OhttpError> {
        Self::setup(config, Some(sender.hpke_key()), &mut rand::rngs::OsRng)
    }

    /// [`ClientRequest::new`] with a caller-chosen RNG for the ephemeral key (deterministic
    /// known-answer tests).
    pub fn new_with_rng<R: rand::RngCore + rand::CryptoRng>(
        config: &KeyConfig,
        rng: &mut R,
    ) -> Result<ClientRequest, OhttpError> {
        Self::setup(config, None, rng)
    }

    pub fn new_auth_with_rng<R: rand::RngCore + rand::CryptoRng>(
        config: &KeyConfig,
        sender_secret: &[u8; 32],
        rng: &mut R,
    ) -> Result<ClientRequest, OhttpError> {
        let sender = PrivateKey::from_bytes(sender_secret).map_err(OhttpError::Hpke)?;
        Self::setup(config, Some(&sender), rng)
    }

    fn setup<R: rand::RngCore + rand::CryptoRng>(
        config: &KeyConfig,
        sender: Option<&PrivateKey>,
        rng: &mut R,
    ) -> Result<ClientRequest, OhttpError> {
        let aead = *config.aeads.first().ok_or(OhttpError::NoSupportedAead)?;
        let ids = header::ids(
            config.key_id,
            KEM_X25519_HKDF_SHA256,
            KDF_HKDF_SHA256,
            aead.id(),
        );
        let setup = cipher::setup_sender(
            aead,
            &config.public_key,
            sender,
            &cipher::request_info(&ids),
            rng,
        )?;
        let mut header = Vec::with_capacity(RequestHeader::LEN);
        header.extend_from_slice(&ids);
        header.extend_from_slice(&setup.enc);
        Ok(ClientRequest {
            header: Bytes::from(header),
            aead,
            enc: setup.enc,
            response_secret: setup.response_secret,
            writer: ChunkWriter::new(setup.ctx),
        })
    }

    /// `header ‖ enc` ([`RequestHeader::LEN`] bytes), written once before any chunk.
    pub fn header(&self) -> Bytes {
        self.header.clone()
    }

    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// Seals a non-final chunk (split when larger than [`MAX_CHUNK_PLAINTEXT`]); an empty
    /// plaintext yields empty output.
    pub fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
        self.writer.seal_chunk(plaintext)
    }

    /// Seals the final chunk; the request body must end right after it.
    pub fn seal_final(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
        self.writer.seal_final(plaintext)
    }

    /// A decoder for this request's response. It depends only on the key exchange, so it can
    /// be created (and used) while the request body is still being sealed.
    pub fn response_decoder(&self) -> ResponseDecoder {
        ResponseDecoder {
            state: DecoderState::AwaitingNonce {
                aead: self.aead,
                enc: self.enc,
                secret: self.response_secret.clone(),
                nonce: Vec::with_capacity(self.aead.response_nonce_len()),
            },
            max_chunk: MAX_CHUNK_CIPHERTEXT,
        }
    }
}

/// Opens a response body: the response nonce, then chunks.
pub struct ResponseDecoder {
    state: DecoderState,
    max_chunk: usize,
}

enum DecoderState {
    AwaitingNonce {
        aead: Aead,
        enc: [u8; 32],
        secret: Vec<u8>,
        nonce: Vec<u8>,
    },
    Chunks(ChunkReader<ResponseCipher>),
}

impl ResponseDecoder {
    /// Appends received bytes. Fails early on a chunk whose declared length, or a final chunk
    /// whose received length, exceeds [`MAX_CHUNK_CIPHERTEXT`].
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), OhttpError> {
        if let DecoderState::AwaitingNonce {
            aead,
            enc,
            secret,
            nonce,
        } = &mut self.state
        {
            let need = aead.response_nonce_len() - nonce.len();
            let take = need.min(data.len());
            nonce.extend_from_slice(&data[..take]);
            data = &data[take..];
            if nonce.len() < aead.response_nonce_len() {
                return Ok(());
            }
            let cipher = ResponseCipher::derive(*aead, secret, enc, nonce)?;
            let mut reader = ChunkReader::new(cipher);
            reader.set_max_chunk(self.max_chunk);
            self.state = DecoderState::Chunks(reader);
        }
        match &mut self.state {
            DecoderState::Chunks(reader) => reader.push(data),
            DecoderState::AwaitingNonce { .. } => Ok(()),
        }
    }

    /// Sets the largest chunk ciphertext accepted (default [`MAX_CHUNK_CIPHERTEXT`]).
    pub fn set_max_chunk(&mut self, max: usize) {
        self.max_chunk = max;
        if let DecoderState::Chunks(reader) = &mut self.state {
            reader.set_max_chunk(max);
        }
    }

    /// The next decrypted non-final, non-empty chunk, if one is complete.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, OhttpError> {
        match &mut self.state {
            DecoderState::Chunks(reader) => reader.next_chunk(),
            DecoderState::AwaitingNonce { .. } => Ok(None),
        }
    }

    /// At end of body: all plaintext not yet returned by `next_chunk`, ending with the opened
    /// final chunk. [`OhttpError::Truncated`] when the final chunk never started.
    pub fn finish(&mut self) -> Result<Bytes, OhttpError> {
        match &mut self.state {
            DecoderState::Chunks(reader) => reader.finish(),
            DecoderState::AwaitingNonce { .. } => Err(OhttpError::Truncated),
        }
    }
}

/// The gateway side of one request: opens the request body and seals the response.
pub struct ServerRequest {
    aead: Aead,
    enc: [u8; 32],
    response_secret: Vec<u8>,
    reader: ChunkReader<HpkeReceiver>,
}

impl ServerRequest {
    /// HPKE Base mode. The header must name this key's id and a suite the key offers.
    pub fn new(key: &ServerKey, header: &RequestHeader) -> Result<ServerRequest, OhttpError> {
        Self::setup(key, header, None)
    }

    /// HPKE Auth mode with the client's attested static public key.
    pub fn new_auth(
        key: &ServerKey,
        header: &RequestHeader,
        sender_public: &[u8; 32],
    ) -> Result<ServerRequest, OhttpError> {
        Self::setup(key, header, Some(sender_public))
    }

    fn setup(
        key: &ServerKey,
        header: &RequestHeader,
        sender: Option<&[u8; 32]>,
    ) -> Result<ServerRequest, OhttpError> {
        if header.key_id != key.config().key_id {
            return Err(OhttpError::KeyIdMismatch);
        }
        let unsupported = || OhttpError::UnsupportedSuite {
            kem: header.kem,
            kdf: header.kdf,
            aead: header.aead,
        };
        if header.kem != KEM_X25519_HKDF_SHA256 || header.kdf != KDF_HKDF_SHA256 {
            return Err(unsupported());
        }
        let aead = Aead::from_id(header.aead)
            .filter(|a| key.config().aeads.contains(a))
            .ok_or_else(unsupported)?;
        let (ctx, response_secret) = cipher::setup_receiver(
            aead,
            key.hpke_key(),
            &header.enc,
            sender,
            &cipher::request_info(&header.ids()),
        )?;
        Ok(ServerRequest {
            aead,
            enc: header.enc,
            response_secret,
            reader: ChunkReader::new(ctx),
        })
    }

    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// Sets the largest chunk ciphertext accepted (default [`MAX_CHUNK_CIPHERTEXT`]).
    pub fn set_max_chunk(&mut self, max: usize) {
        self.reader.set_max_chunk(max);
    }

    /// Appends received body bytes (everything after the header).
    pub fn push(&mut self, data: &[u8]) -> Result<(), OhttpError> {
        self.reader.push(data)
    }

    /// The next decrypted non-final, non-empty chunk, if one is complete.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, OhttpError> {
        self.reader.next_chunk()
    }

    /// At end of body: all plaintext not yet returned by `next_chunk`, ending with the opened
    /// final chunk. [`OhttpError::Truncated`] when the final chunk never started.
    pub fn finish(&mut self) -> Result<Bytes, OhttpError> {
        self.reader.finish()
    }

    /// A response sealer with a fresh random response nonce. Usable before the request body
    /// has been read completely (full-duplex streaming).
    pub fn response_encoder(&self) -> ResponseEncoder {
        self.response_encoder_with_rng(&mut rand::rngs::OsRng)
    }

    pub fn response_encoder_with_rng<R: rand::RngCore + rand::CryptoRng>(
        &self,
        rng: &mut R,
    ) -> ResponseEncoder {
        let mut nonce = vec![0u8; self.aead.response_nonce_len()];
        rng.fill_bytes(&mut nonce);
        let sealer = ResponseCipher::derive(self.aead, &self.response_secret, &self.enc, &nonce);
        ResponseEncoder {
            nonce: Bytes::from(nonce),
            writer: sealer.map(ChunkWriter::new),
        }
    }
}

/// Seals a response body. Write [`ResponseEncoder::nonce`] first, then the chunks.
pub struct ResponseEncoder {
    nonce: Bytes,
    // Key derivation cannot fail for the fixed lengths used, but if it ever did the error is
    // reported on the first seal instead of panicking.
    writer: Result<ChunkWriter<ResponseCipher>, OhttpError>,
}

impl ResponseEncoder {
    /// The response nonce (`Ne` random bytes): the first bytes of the response body.
    pub fn nonce(&self) -> Bytes {
        self.nonce.clone()
    }

    pub fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
        match &mut self.writer {
            Ok(writer) => writer.seal_chunk(plaintext),
            Err(_) => Err(OhttpError::Seal),
        }
    }

    pub fn seal_final(&mut self, plaintext: &[u8]) -> Result<Bytes, OhttpError> {
        match &mut self.writer {
            Ok(writer) => writer.seal_final(plaintext),
            Err(_) => Err(OhttpError::Seal),
        }
    }
}
