//! `/readyz`: how many services have not started accepting yet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts services that have not started accepting yet.
#[derive(Clone)]
pub struct Readiness {
    pending: Arc<AtomicUsize>,
    all_ready: Arc<Notify>,
}

impl Readiness {
    pub fn new(services: usize) -> Self {
        Self {
            pending: Arc::new(AtomicUsize::new(services)),
            all_ready: Arc::new(Notify::new()),
        }
    }

    pub fn service_ready(&self) {
        let before = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.all_ready.notify_waiters();
        }
    }

    /// Resolves once every service is ready (at once if they already are).
    pub async fn ready(&self) {
        loop {
            let notified = self.all_ready.notified();
            if self.is_ready() {
                return;
            }
            notified.await;
        }
    }

    /// A service that stopped accepting (a cluster node that lost the cluster's keys).
    pub fn service_unready(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}
