//! Read boundaries chosen by the input. Streaming decoders see the network's reads, which can
//! end anywhere; letting the fuzzer pick them explores every "header split across reads" case.
//!
//! Split targets start with [`Control::LEN`] control bytes: a read-size mode, a seed and
//! target-specific flags. The rest is what the decoder sees.

/// The control prefix of a split target's input.
#[derive(Clone, Copy, Debug)]
pub struct Control {
    pub splits: Splits,
    pub flags: u8,
}

impl Control {
    pub const LEN: usize = 3;

    /// The control bytes and the rest, or `None` when the input is too short to hold them.
    pub fn parse(data: &[u8]) -> Option<(Control, &[u8])> {
        let (&[mode, seed, flags], rest) = data.split_first_chunk::<{ Control::LEN }>()?;
        Some((
            Control {
                splits: Splits::new(mode, seed),
                flags,
            },
            rest,
        ))
    }

    /// The bytes that select `splits` and `flags` (for writing corpus files).
    pub fn encode(mode: u8, seed: u8, flags: u8) -> [u8; Control::LEN] {
        [mode, seed, flags]
    }
}

/// How to cut an input into reads: mode 0 is a single read, 1..=32 fixed reads of that many
/// bytes (so 1-byte reads are one mode away), above that pseudo-random sizes up to
/// `8 * mode` bytes drawn from `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Splits {
    mode: u8,
    state: u32,
}

impl Splits {
    pub fn new(mode: u8, seed: u8) -> Splits {
        Splits {
            mode,
            // xorshift needs a non-zero state; spreading the byte keeps nearby seeds apart.
            state: (u32::from(seed) + 1).wrapping_mul(0x9E37_79B9),
        }
    }

    pub fn whole() -> Splits {
        Splits::new(0, 0)
    }

    /// The size of the next read when `remaining` bytes are left (at least 1).
    pub fn next_len(&mut self, remaining: usize) -> usize {
        let len = match self.mode {
            0 => remaining,
            fixed @ 1..=32 => usize::from(fixed),
            max => {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 17;
                self.state ^= self.state << 5;
                1 + self.state as usize % (8 * usize::from(max))
            }
        };
        len.clamp(1, remaining.max(1))
    }

    /// `data` cut into non-empty reads (none for empty data).
    pub fn pieces(mut self, data: &[u8]) -> impl Iterator<Item = &[u8]> {
        let mut rest = data;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (piece, after) = rest.split_at(self.next_len(rest.len()));
            rest = after;
            Some(piece)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_in_order() {
        let data: Vec<u8> = (0..=255).collect();
        for mode in [0, 1, 7, 32, 33, 200, 255] {
            for seed in [0, 1, 99, 255] {
                let pieces: Vec<&[u8]> = Splits::new(mode, seed).pieces(&data).collect();
                assert!(pieces.iter().all(|p| !p.is_empty()));
                assert_eq!(pieces.concat(), data, "mode {mode} seed {seed}");
            }
        }
        assert_eq!(Splits::new(1, 0).pieces(&data).count(), 256);
        assert_eq!(Splits::whole().pieces(&data).count(), 1);
        assert_eq!(Splits::new(5, 0).pieces(&[]).count(), 0);
    }
}
