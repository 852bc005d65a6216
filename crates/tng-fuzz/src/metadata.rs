//! The egress's first read of a tunnel body: `u32 length ‖ protobuf Metadata`.

use tng_ohttp::metadata::{encode_frame, ClientAuth, Metadata, MetadataReader};

use crate::split::{Control, Splits};

/// The egress's limit (`tng::transport::ohttp::egress::tunnel::MAX_METADATA_LEN`).
const EGRESS_MAX_LEN: usize = 1024 * 1024;
/// A limit small enough for short inputs to cross it (flag bit 0).
const SMALL_MAX_LEN: usize = 64;

#[derive(Debug, PartialEq)]
enum Outcome {
    /// The metadata and every byte after the frame.
    Read(Metadata, Vec<u8>),
    Failed(String),
}

/// Input: [`Control`] bytes, then the tunnel body. Flags: bit 0 = small length limit, bit 1 =
/// an empty read between reads.
pub fn metadata(data: &[u8]) {
    let Some((control, body)) = Control::parse(data) else {
        return;
    };
    let max = if control.flags & 1 == 0 {
        EGRESS_MAX_LEN
    } else {
        SMALL_MAX_LEN
    };
    let empty_reads = control.flags & 2 != 0;
    let whole = read(body, Splits::whole(), max, false);
    let split = read(body, control.splits, max, empty_reads);
    assert_eq!(whole, split, "metadata result depends on read boundaries");
    if let Outcome::Read(metadata, _) = &whole {
        check(metadata, max);
    }
}

fn read(body: &[u8], splits: Splits, max: usize, empty_reads: bool) -> Outcome {
    let mut reader = MetadataReader::new(max);
    let mut consumed = 0;
    for piece in splits.pieces(body) {
        if empty_reads {
            if let Err(e) = reader.push(&[]) {
                return Outcome::Failed(e.to_string());
            }
        }
        consumed += piece.len();
        match reader.push(piece) {
            Ok(None) => {}
            Ok(Some((metadata, rest))) => {
                let mut after = rest.to_vec();
                after.extend_from_slice(&body[consumed..]);
                // The frame is read once; the caller must not be able to read it again.
                assert!(reader.push(b"x").is_err(), "metadata read twice");
                return Outcome::Read(metadata, after);
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        }
    }
    Outcome::Failed(reader.finish().to_string())
}

/// What the egress does with the fields next, and that the frame re-encodes to the same value.
fn check(metadata: &Metadata, max: usize) {
    if let Some(ClientAuth::AttestedPublicKey(attested)) = &metadata.client_auth {
        let _ = <[u8; 32]>::try_from(attested.pk_s.as_slice());
    }
    let frame = encode_frame(metadata);
    let mut reader = MetadataReader::new(max.max(frame.len()));
    match reader.push(&frame) {
        Ok(Some((again, rest))) => {
            assert_eq!(&again, metadata, "metadata does not survive re-encoding");
            assert!(rest.is_empty());
        }
        other => panic!("re-encoded metadata does not decode: {:?}", other.err()),
    }
}
