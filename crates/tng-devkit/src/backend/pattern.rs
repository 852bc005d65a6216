//! The `/bytes` pattern: byte `i` of the body is `(i % 251) as u8`.
//!
//! 251 is prime, so the pattern never lines up with power-of-two frame sizes: a lost,
//! duplicated or reordered frame changes the bytes. Tests recompute it instead of storing it.

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use http_body::Frame;

pub const PERIOD: u64 = 251;

/// `total` pattern bytes as frames of at most `chunk` bytes. One buffer of
/// `chunk + PERIOD` bytes is shared by all frames, each frame a zero-copy slice of it.
pub fn frames(
    total: u64,
    chunk: usize,
) -> impl Stream<Item = Result<Frame<Bytes>, super::body::Error>> {
    let chunk = chunk.max(1);
    let block = Bytes::from(
        (0..(chunk as u64 + PERIOD))
            .map(|i| (i % PERIOD) as u8)
            .collect::<Vec<u8>>(),
    );
    stream::unfold(0u64, move |sent| {
        let block = block.clone();
        async move {
            if sent >= total {
                return None;
            }
            let len = (total - sent).min(chunk as u64) as usize;
            let start = (sent % PERIOD) as usize;
            let frame = Frame::data(block.slice(start..start + len));
            Some((Ok(frame), sent + len as u64))
        }
    })
}
