//! `limits` on an `add_ingress[]` or `add_egress[]` entry: our extension (upstream has no such
//! object). Every field is optional; the defaults are what a production gateway should run
//! with, so most configurations never write this object.

use std::time::Duration;

use crate::error::Result;
use crate::json::{Field, Obj};

/// Resource limits of one ingress or egress, applied to each of its listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + header lines), in bytes. Also bounds the inner
    /// (BHTTP) header section the egress decodes and the outer response head the ingress reads.
    pub max_header_bytes: usize,
    /// Most header fields in one request head (same places as `max_header_bytes`).
    pub max_headers: usize,
    /// Time a client has to send a complete request head (slowloris guard).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Open connections per listener; the next one gets a `503` and is closed.
    pub max_connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Egress: largest tunnel metadata frame.
    pub max_metadata_bytes: usize,
    /// Largest chunked-OHTTP chunk (ciphertext) accepted from the peer.
    pub max_chunk_bytes: usize,
    /// Longest wait for the next bytes of a request body the gateway is reading; `None` waits
    /// for ever (slow-body guard: a client trickling its body holds a connection upstream too).
    pub body_read_timeout: Option<Duration>,
    /// Time to the first response byte from the upstream; `None` waits for ever.
    pub response_timeout: Option<Duration>,
    /// Egress: the replay window (RFC 9458 §6.5); `None` disables replay protection.
    pub replay_window: Option<Duration>,
    /// Egress: most requests remembered for the replay check at once.
    pub replay_capacity: usize,
}

/// The chunked-OHTTP protocol's own ceiling: 2^14 plaintext bytes plus the AEAD tag. Upstream's
/// library refuses anything larger, so a larger default would only admit non-TNG senders.
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 16384 + 16;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_concurrent_streams: 256,
            max_metadata_bytes: 1024 * 1024,
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            body_read_timeout: Some(Duration::from_secs(60)),
            response_timeout: Some(Duration::from_secs(300)),
            replay_window: Some(Duration::from_secs(60)),
            replay_capacity: 1 << 18,
        }
    }
}

const COMMON: [&str; 9] = [
    "max_header_bytes",
    "max_headers",
    "header_read_timeout",
    "idle_timeout",
    "max_connections",
    "max_concurrent_streams",
    "max_chunk_bytes",
    "body_read_timeout",
    "response_timeout",
];
const EGRESS_ONLY: [&str; 3] = ["max_metadata_bytes", "replay_window", "replay_capacity"];

/// The bounds keep values inside what the runtime can honour (hyper needs an 8 KiB read
/// buffer; a chunk needs room for its 16-byte tag; sizes stay far from overflow).
pub(crate) fn parse_limits(obj: &mut Obj<'_>, egress: bool) -> Result<Limits> {
    let mut limits = Limits::default();
    let Some(field) = obj.opt("limits") else {
        return Ok(limits);
    };
    let mut l = field.object()?;
    if let Some(f) = l.opt("max_header_bytes") {
        limits.max_header_bytes = range(&f, 1024, 16 * 1024 * 1024)?;
    }
    if let Some(f) = l.opt("max_headers") {
        limits.max_headers = range(&f, 1, 10_000)?;
    }
    if let Some(f) = l.opt("header_read_timeout") {
        limits.header_read_timeout = Duration::from_secs(range(&f, 1, 86_400)? as u64);
    }
    if let Some(f) = l.opt("idle_timeout") {
        limits.idle_timeout = Duration::from_secs(range(&f, 1, 86_400)? as u64);
    }
    if let Some(f) = l.opt("max_connections") {
        limits.max_connections = range(&f, 1, 1_000_000)?;
    }
    if let Some(f) = l.opt("max_concurrent_streams") {
        limits.max_concurrent_streams = range(&f, 1, 1_000_000)? as u32;
    }
    if let Some(f) = l.opt("max_chunk_bytes") {
        limits.max_chunk_bytes = range(&f, 17, 16 * 1024 * 1024)?;
    }
    if let Some(f) = l.opt("body_read_timeout") {
        limits.body_read_timeout = optional_secs(&f)?;
    }
    if let Some(f) = l.opt("response_timeout") {
        limits.response_timeout = optional_secs(&f)?;
    }
    if egress {
        if let Some(f) = l.opt("max_metadata_bytes") {
            limits.max_metadata_bytes = range(&f, 64, 32 * 1024 * 1024)?;
        }
        if let Some(f) = l.opt("replay_window") {
            limits.replay_window = optional_secs(&f)?;
        }
        if let Some(f) = l.opt("replay_capacity") {
            limits.replay_capacity = range(&f, 16, 16 * 1024 * 1024)?;
        }
        let keys: Vec<&str> = COMMON.iter().chain(EGRESS_ONLY.iter()).copied().collect();
        l.finish(&keys)?;
    } else {
        if let Some(f) = EGRESS_ONLY.iter().find_map(|k| l.opt(k)) {
            return Err(f.err("only valid on add_egress"));
        }
        l.finish(&COMMON)?;
    }
    Ok(limits)
}

fn range(field: &Field<'_>, min: u64, max: u64) -> Result<usize> {
    let n = field.u64()?;
    if n < min {
        return Err(field.err(if min == 1 {
            "must be > 0".to_string()
        } else {
            format!("must be >= {min}")
        }));
    }
    if n > max {
        return Err(field.err(format!("must be <= {max}")));
    }
    Ok(n as usize)
}

/// Seconds where 0 means "no limit".
fn optional_secs(field: &Field<'_>) -> Result<Option<Duration>> {
    let n = range(field, 0, 86_400)?;
    Ok((n > 0).then(|| Duration::from_secs(n as u64)))
}
