//! A UDP entry runs on a thread of its own, with a single-threaded runtime.
//!
//! Every datagram crosses several tasks (the receive loop, the flow, quinn's connection and
//! endpoint drivers). On the shared work-stealing runtime each hop can wake a parked worker
//! on another core, and those wake-ups and context switches were most of a datagram's CPU
//! time in the profile (bench/results.md, UDP). On one thread the hops are plain task polls.
//! One core per UDP entry is far more than its datagram rate needs.

use std::future::Future;

use anyhow::Context;
use tokio::sync::oneshot;

/// Tells the caller that the entry bound (or why it could not).
pub type Bound = oneshot::Sender<anyhow::Result<()>>;

/// Starts `run` on a new thread and waits until it reports through [`Bound`]; the returned
/// receiver resolves once the entry has finished serving and its runtime is gone (so its
/// capture guards and telemetry handles are dropped).
pub async fn start<F, Fut>(name: String, run: F) -> anyhow::Result<oneshot::Receiver<()>>
where
    F: FnOnce(Bound) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (bound_tx, bound_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    runtime.block_on(run(bound_tx));
                    drop(runtime);
                }
                Err(err) => {
                    let _ = bound_tx.send(Err(err).context("cannot start the entry's runtime"));
                }
            }
            let _ = done_tx.send(());
        })
        .with_context(|| format!("cannot start thread {name}"))?;
    bound_rx
        .await
        .map_err(|_| anyhow::anyhow!("{name} ended before it bound"))??;
    Ok(done_rx)
}
