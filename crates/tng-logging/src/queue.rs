//! The bounded hand-off between threads that log and the thread that writes one destination.
//!
//! Pushing never waits: a full queue (the writer is slow, blocked or gone) drops the line and
//! counts it. The bound is both a line count and a byte count, so a burst of huge lines cannot
//! take more memory than a burst of small ones.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

/// Lines queued per destination at most.
pub(crate) const QUEUE_LINES: usize = 8192;
/// Bytes queued per destination at most.
pub(crate) const QUEUE_BYTES: usize = 8 << 20;

pub(crate) enum Msg {
    Line(Vec<u8>),
    /// Write everything queued before this, then acknowledge.
    Flush(Sender<()>),
    /// Flush, then end the writer thread.
    Stop,
}

/// Counters of one destination, for tests and for the loss reports.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub written: AtomicU64,
    pub lost_queue_full: AtomicU64,
    pub lost_write_failed: AtomicU64,
}

/// What happened to the lines bound for one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestinationStats {
    /// Lines written completely (the loss reports themselves not counted).
    pub written: u64,
    /// Lines dropped because the queue was full: the writer could not keep up.
    pub lost_queue_full: u64,
    /// Lines dropped because writing them failed (disk full, I/O error, file gone).
    pub lost_write_failed: u64,
}

pub(crate) struct Queue {
    tx: Sender<Msg>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    pub counters: Counters,
    /// The path, or `stdout`, for messages.
    pub name: String,
}

impl Queue {
    pub fn new(name: String) -> (Queue, Receiver<Msg>) {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_LINES);
        let queue = Queue {
            tx,
            queued_bytes: AtomicUsize::new(0),
            max_bytes: QUEUE_BYTES,
            counters: Counters::default(),
            name,
        };
        (queue, rx)
    }

    /// Queues one complete line (newline included), or counts it as lost.
    pub fn push(&self, line: Vec<u8>) {
        let len = line.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.counters
                .lost_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Line(line))
        {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.counters
                .lost_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The writer took a line of `len` bytes out of the queue.
    pub fn taken(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    /// Waits until the writer has written every line queued so far, or `deadline` passes.
    /// Returns whether it did.
    pub fn flush(&self, deadline: Instant) -> bool {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.tx.send_timeout(Msg::Flush(ack_tx), timeout) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_) | SendTimeoutError::Disconnected(_)) => return false,
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        ack_rx.recv_timeout(timeout).is_ok()
    }

    /// Asks the writer to end after what is queued; never waits.
    pub fn stop(&self) {
        let _ = self.tx.try_send(Msg::Stop);
    }

    pub fn stats(&self) -> DestinationStats {
        DestinationStats {
            written: self.counters.written.load(Ordering::Relaxed),
            lost_queue_full: self.counters.lost_queue_full.load(Ordering::Relaxed),
            lost_write_failed: self.counters.lost_write_failed.load(Ordering::Relaxed),
        }
    }
}
