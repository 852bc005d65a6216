//! `/readyz`: how many services have not started accepting yet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts services that have not started accepting yet.
#[derive(Clone)]
pub struct Readiness {
    pending: Arc<AtomicUsize>,
}

impl Readiness {
    pub fn new(services: usize) -> Self {
        Self {
            pending: Arc::new(AtomicUsize::new(services)),
        }
    }

    pub fn service_ready(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// A service that stopped accepting (a cluster node that lost the cluster's keys).
    pub fn service_unready(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}
