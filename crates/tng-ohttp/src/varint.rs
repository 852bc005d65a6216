//! QUIC variable-length integers (RFC 9000 §16), the length encoding of both chunked OHTTP and
//! Binary HTTP.

use bytes::BufMut;

/// Largest value a varint can carry (2^62 - 1).
pub(crate) const MAX: u64 = (1 << 62) - 1;

/// Number of bytes the minimal encoding of `v` takes.
pub(crate) fn encoded_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Writes the minimal encoding of `v`. Values above [`MAX`] cannot be represented; callers only
/// pass lengths of in-memory buffers and status codes, so they are clamped rather than panicking.
pub(crate) fn encode(v: u64, out: &mut impl BufMut) {
    let v = v.min(MAX);
    match encoded_len(v) {
        1 => out.put_u8(v as u8),
        2 => out.put_u16(0x4000 | v as u16),
        4 => out.put_u32(0x8000_0000 | v as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | v),
    }
}

/// Decodes a varint at the start of `buf`. `None` means more bytes are needed; otherwise the
/// value and the number of bytes it occupied. Any encoding length is accepted (RFC 9000 does
/// not require minimal encodings).
pub(crate) fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    #[test]
    fn rfc9000_examples() {
        // RFC 9000 §A.1 sample encodings.
        let cases: [(&str, u64); 4] = [
            ("c2197c5eff14e88c", 151_288_809_941_952_652),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
        ];
        for (hex_str, v) in cases {
            let bytes = hex::decode(hex_str).unwrap();
            assert_eq!(decode(&bytes), Some((v, bytes.len())));
            assert_eq!(enc(v), bytes);
        }
        // Non-minimal encoding of 37 is accepted.
        assert_eq!(decode(&[0x40, 0x25]), Some((37, 2)));
    }

    #[test]
    fn boundaries_round_trip() {
        for v in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, MAX] {
            let bytes = enc(v);
            assert_eq!(bytes.len(), encoded_len(v));
            assert_eq!(decode(&bytes), Some((v, bytes.len())));
        }
    }

    #[test]
    fn incomplete_needs_more() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x40]), None);
        assert_eq!(decode(&[0x80, 0, 0]), None);
        assert_eq!(decode(&[0xc0, 0, 0, 0, 0, 0, 0]), None);
    }
}
