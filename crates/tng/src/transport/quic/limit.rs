//! What does not fit in one DATAGRAM frame is dropped, as UDP would; it is counted and
//! logged (first occurrence per flow, then every 1000th) rather than lost silently.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

/// Oversized datagrams of one side of a gateway.
#[derive(Debug, Default)]
pub struct Oversize {
    dropped: AtomicU64,
}

impl Oversize {
    pub fn total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts one dropped datagram of `size` bytes against `limit`; `flow_count` is the
    /// flow's own tally, for the log cadence.
    pub fn drop(&self, flow_count: &mut u64, size: usize, limit: usize, why: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        *flow_count += 1;
        if *flow_count == 1 || (*flow_count).is_multiple_of(1000) {
            warn!(
                size,
                limit,
                dropped_in_flow = *flow_count,
                dropped_total = self.total(),
                "datagram size {size} exceeds {why} {limit}: dropped"
            );
        }
    }
}

/// The size a datagram may have on this connection: the tunnel's current limit, lowered by
/// `quic.max_datagram_size`. `None`: the peer accepts no DATAGRAM frames at all.
pub fn allowed(conn: &quinn::Connection, configured: Option<u16>) -> Option<(usize, &'static str)> {
    let path = conn.max_datagram_size()?;
    Some(match configured {
        Some(max) if usize::from(max) < path => (usize::from(max), "max_datagram_size"),
        _ => (path, "the tunnel's datagram limit"),
    })
}
