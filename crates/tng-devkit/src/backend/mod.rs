//! The test backend: a plain HTTP service standing in for the application behind an egress.
//!
//! Every route streams; none holds a whole body in memory, so memory measurements of the
//! tunnel are not polluted by the backend and multi-GiB transfers work. Routes live in
//! [`routes`]; the byte pattern in [`pattern`]; the SSE acknowledgement channel in [`sse`].

mod body;
mod pattern;
mod routes;
mod sse;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// State shared by all connections.
#[derive(Default)]
pub struct Shared {
    /// Requests served, excluding the test side channels (`/__stats`, `/sse-ack`).
    pub requests: AtomicU64,
    pub sse: sse::AckBoard,
}

/// Serves until SIGTERM/SIGINT, then lets open connections finish for up to 3 s.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "backend listening on {local}")?;
        out.flush()?;
    }
    let shared = Arc::new(Shared::default());
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |req| routes::handle(shared.clone(), req));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!("connection from {peer}: {err}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down");
    if tokio::time::timeout(Duration::from_secs(3), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 3 s; exiting anyway");
    }
    Ok(())
}
