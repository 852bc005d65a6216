//! Multiplexed framing: pooled HTTP/2 connections per egress endpoint, one `CONNECT` stream
//! per application connection.
//!
//! A stream goes to the pooled connection with the fewest streams below
//! `multiplex_max_streams_per_connection`; when every connection is full, a new one is opened
//! (one at a time per endpoint, so a burst of application connections does not open a burst
//! of TLS connections) unless `multiplex_max_connections` are open, in which case the
//! application connection waits for a stream to end. Idle connections are closed after
//! [`IDLE_TIMEOUT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::upgrade::Upgraded;
use tokio::sync::Notify;
use tracing::{debug, info};

use super::super::security::ClientSecurity;
use super::connect::attested_connection;
use super::h2;
use crate::transport::{OpenError, Target};

/// Streams per connection when the configuration sets no limit: below upstream egresses'
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (200), so streams never queue inside one connection.
const DEFAULT_STREAMS_PER_CONNECTION: usize = 100;
/// A pooled connection without streams for this long is closed (upstream's pool uses 90 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Pool {
    max_streams: usize,
    max_connections: Option<usize>,
    so_mark: Option<u32>,
    endpoints: Mutex<HashMap<Target, Arc<Endpoint>>>,
}

#[derive(Default)]
struct Endpoint {
    connections: Mutex<Vec<Arc<Connection>>>,
    /// Held while a new connection is being opened.
    opening: tokio::sync::Mutex<()>,
    /// Signalled when a stream ends or a connection closes.
    freed: Notify,
}

struct Connection {
    send: h2::Sender,
    streams: AtomicUsize,
    closed: Arc<AtomicBool>,
    idle_since: Mutex<Instant>,
}

impl Connection {
    fn usable(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.send.is_closed()
    }

    fn idle_too_long(&self, now: Instant) -> bool {
        self.streams.load(Ordering::Acquire) == 0
            && now.duration_since(*lock(&self.idle_since)) > IDLE_TIMEOUT
    }
}

/// A stream's claim on its connection; released when the application connection ends.
pub struct StreamSlot {
    connection: Arc<Connection>,
    endpoint: Arc<Endpoint>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if self.connection.streams.fetch_sub(1, Ordering::AcqRel) == 1 {
            *lock(&self.connection.idle_since) = Instant::now();
        }
        self.endpoint.freed.notify_waiters();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    pub fn new(config: &tng_config::RatsTls, so_mark: Option<u32>) -> Self {
        Self {
            max_streams: config
                .max_streams_per_connection
                .map_or(DEFAULT_STREAMS_PER_CONNECTION, |n| n.get() as usize),
            max_connections: config.max_connections.map(|n| n.get() as usize),
            so_mark,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// Opens one `CONNECT` stream to `target` and waits for its `200`.
    pub async fn stream(
        &self,
        security: &ClientSecurity,
        target: &Target,
    ) -> Result<(Upgraded, StreamSlot), OpenError> {
        let endpoint = lock(&self.endpoints)
            .entry(target.clone())
            .or_default()
            .clone();
        // A pooled connection the egress has just closed fails the first stream sent on it;
        // that stream is sent once more, on another connection.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let slot = self.claim(&endpoint, security, target).await?;
            let mut send = slot.connection.send.clone();
            let upgraded = match h2::open_stream(&mut send).await {
                Ok(upgraded) => upgraded,
                Err(err) if attempts == 1 && err.connection_failed() => {
                    debug!(%target, "pooled connection failed a new stream ({err}); retrying");
                    slot.connection.closed.store(true, Ordering::Release);
                    continue;
                }
                Err(h2::StreamError::Refused(status)) => {
                    return Err(OpenError::unreachable(format!(
                        "the egress {target} answered CONNECT with {status}"
                    )))
                }
                Err(err) => {
                    return Err(OpenError::unreachable(format!(
                        "CONNECT stream to {target} failed: {err}"
                    )))
                }
            };
            return Ok((upgraded, slot));
        }
    }

    /// A stream slot on a usable connection, opening one when all are full.
    async fn claim(
        &self,
        endpoint: &Arc<Endpoint>,
        security: &ClientSecurity,
        target: &Target,
    ) -> Result<StreamSlot, OpenError> {
        loop {
            let freed = endpoint.freed.notified();
            if let Some(slot) = self.free_slot(endpoint) {
                return Ok(slot);
            }
            let open = {
                let connections = lock(&endpoint.connections);
                self.max_connections
                    .is_none_or(|max| connections.len() < max)
            };
            if open {
                let _opening = endpoint.opening.lock().await;
                // Another application connection may have opened one meanwhile.
                if let Some(slot) = self.free_slot(endpoint) {
                    return Ok(slot);
                }
                let connection = self.open(endpoint, security, target).await?;
                lock(&endpoint.connections).push(connection);
                continue;
            }
            debug!(%target, "every pooled connection is full; waiting for a stream to end");
            freed.await;
        }
    }

    fn free_slot(&self, endpoint: &Arc<Endpoint>) -> Option<StreamSlot> {
        let now = Instant::now();
        let mut connections = lock(&endpoint.connections);
        // Dropping the last handle of an idle connection sends GOAWAY and closes it.
        connections.retain(|c| c.usable() && !c.idle_too_long(now));
        let connection = connections
            .iter()
            .filter(|c| c.streams.load(Ordering::Acquire) < self.max_streams)
            .min_by_key(|c| c.streams.load(Ordering::Acquire))?
            .clone();
        connection.streams.fetch_add(1, Ordering::AcqRel);
        Some(StreamSlot {
            connection,
            endpoint: endpoint.clone(),
        })
    }

    async fn open(
        &self,
        endpoint: &Arc<Endpoint>,
        security: &ClientSecurity,
        target: &Target,
    ) -> Result<Arc<Connection>, OpenError> {
        let tls = attested_connection(security, target, self.so_mark).await?;
        let (send, conn) = h2::handshake(tls)
            .await
            .map_err(|e| OpenError::unreachable(format!("HTTP/2 with {target} failed: {e}")))?;
        let closed = Arc::new(AtomicBool::new(false));
        let (flag, endpoint, name) = (closed.clone(), endpoint.clone(), target.to_string());
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                debug!(target = %name, "pooled connection ended: {err}");
            }
            flag.store(true, Ordering::Release);
            endpoint.freed.notify_waiters();
        });
        info!(%target, "new multiplexed rats-TLS connection");
        Ok(Arc::new(Connection {
            send,
            streams: AtomicUsize::new(0),
            closed,
            idle_since: Mutex::new(Instant::now()),
        }))
    }
}
