//! The deterministic byte pattern of the devkit backend's `/bytes` route: byte `i` of a body
//! is `(i % 251) as u8`. 251 is prime, so the pattern never lines up with power-of-two chunk
//! or frame sizes and a dropped, duplicated or reordered chunk always shows.

use sha2::{Digest, Sha256};

pub const PATTERN_PERIOD: u64 = 251;

const BLOCK: usize = 64 * 1024;

/// `len` pattern bytes starting at absolute offset `offset`.
pub fn pattern_bytes(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) % PATTERN_PERIOD) as u8)
        .collect()
}

/// Hex SHA-256 of the first `n` pattern bytes, computed in 1 MiB steps.
pub fn pattern_sha256(n: u64) -> String {
    let mut hasher = Sha256::new();
    let block = pattern_bytes(0, (1 << 20) + PATTERN_PERIOD as usize);
    let mut done = 0u64;
    while done < n {
        let take = (n - done).min(1 << 20) as usize;
        let start = (done % PATTERN_PERIOD) as usize;
        hasher.update(&block[start..start + take]);
        done += take as u64;
    }
    hex::encode(hasher.finalize())
}

/// Verifies a stream against the pattern as it arrives, without storing it; also hashes it.
pub struct PatternChecker {
    block: Vec<u8>,
    offset: u64,
    first_mismatch: Option<u64>,
    hasher: Sha256,
}

impl Default for PatternChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl PatternChecker {
    pub fn new() -> Self {
        PatternChecker {
            block: pattern_bytes(0, BLOCK + PATTERN_PERIOD as usize),
            offset: 0,
            first_mismatch: None,
            hasher: Sha256::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        let mut at = self.offset;
        for piece in data.chunks(BLOCK) {
            if self.first_mismatch.is_some() {
                break;
            }
            let start = (at % PATTERN_PERIOD) as usize;
            let expected = &self.block[start..start + piece.len()];
            if piece != expected {
                let i = piece.iter().zip(expected).position(|(a, b)| a != b);
                self.first_mismatch = Some(at + i.unwrap_or(0) as u64);
            }
            at += piece.len() as u64;
        }
        self.hasher.update(data);
        self.offset += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    /// Offset of the first byte that differed from the pattern, if any.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_mismatch
    }

    /// Hex SHA-256 of everything fed.
    pub fn sha256(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}
