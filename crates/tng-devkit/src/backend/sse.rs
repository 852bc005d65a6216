//! `/sse` and its side channel `/sse-ack`.
//!
//! After sending event `i` the stream waits until the test calls `/sse-ack?id=ID&i=i`
//! directly on the backend. If anything between backend and client buffered the stream, the
//! client would never see event `i`, never acknowledge it, and the test would time out: so a
//! passing test proves chunk-by-chunk delivery without relying on timing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use http_body::Frame;
use tokio::sync::watch;

const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Per stream id: one more than the highest acknowledged event index.
#[derive(Default)]
pub struct AckBoard {
    streams: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl AckBoard {
    fn channel(&self, id: &str) -> watch::Sender<u64> {
        let mut map = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    /// Records that the client has seen event `i` of stream `id` (may precede the stream).
    pub fn ack(&self, id: &str, i: u64) {
        self.channel(id)
            .send_modify(|acked| *acked = (*acked).max(i + 1));
    }

    fn forget(&self, id: &str) {
        let mut map = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// `n` events `data: event-<i>\n\n`, each its own frame, each waiting for its ack before the
/// next one (and before the end of the stream). A missing ack ends the stream after 30 s.
pub fn events(
    board: std::sync::Arc<super::Shared>,
    id: String,
    n: u64,
) -> impl Stream<Item = Result<Frame<Bytes>, super::body::Error>> {
    let acks = board.sse.channel(&id).subscribe();
    stream::unfold((0u64, acks), move |(i, mut acks)| {
        let board = board.clone();
        let id = id.clone();
        async move {
            if i > 0 {
                let wanted = i;
                let acked =
                    tokio::time::timeout(ACK_TIMEOUT, acks.wait_for(|a| *a >= wanted)).await;
                if !matches!(acked, Ok(Ok(_))) {
                    tracing::warn!(
                        "sse {id}: no ack for event {} within {ACK_TIMEOUT:?}",
                        i - 1
                    );
                    board.sse.forget(&id);
                    return None;
                }
            }
            if i >= n {
                board.sse.forget(&id);
                return None;
            }
            let frame = Frame::data(Bytes::from(format!("data: event-{i}\n\n")));
            Some((Ok(frame), (i + 1, acks)))
        }
    })
}
