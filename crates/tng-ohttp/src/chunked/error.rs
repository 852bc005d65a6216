#[derive(Debug, thiserror::Error)]
pub enum OhttpError {
    #[error("the chunked OHTTP message was truncated")]
    Truncated,
    #[error("chunk of {len} bytes exceeds the maximum of {max} bytes")]
    ChunkTooLarge { len: u64, max: usize },
    // Upstream's wording, which operators will search for.
    #[error("the key ID was invalid")]
    KeyIdMismatch,
    #[error("unsupported HPKE suite: KEM 0x{kem:04x}, KDF 0x{kdf:04x}, AEAD 0x{aead:04x}")]
    UnsupportedSuite { kem: u16, kdf: u16, aead: u16 },
    #[error("the key config offers no supported AEAD")]
    NoSupportedAead,
    // Upstream's wording.
    #[error("Failed to open ciphertext")]
    Open,
    #[error("failed to seal plaintext")]
    Seal,
    #[error("invalid OHTTP request header: {0}")]
    InvalidHeader(String),
    #[error("HPKE error: {0}")]
    Hpke(crate::rfc9180::Error),
    #[error("the final chunk was already processed")]
    Finished,
    #[error("an earlier chunk failed; the stream cannot continue")]
    Failed,
}
