//! Process-wide shutdown signal: SIGINT/SIGTERM stop every accept loop, then in-flight
//! requests get a bounded grace period.

use std::time::Duration;

use tokio::sync::watch;

/// How long in-flight requests may run after a stop signal before they are cut.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been requested.
    pub async fn requested(&mut self) {
        // An error means the trigger is gone, which also means the process is stopping.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
