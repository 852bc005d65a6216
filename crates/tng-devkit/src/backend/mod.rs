//! The test backend: a plain HTTP service standing in for the application behind an egress.
//!
//! Every route streams; none holds a whole body in memory, so memory measurements of the
//! tunnel are not polluted by the backend and multi-GiB transfers work. Routes live in
//! [`routes`]; the byte pattern in [`pattern`]; the SSE acknowledgement channel in [`sse`].

mod body;
mod pattern;
mod routes;
mod sse;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

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
    let shared = Arc::new(Shared::default());
    crate::http_server::serve_until_signal(
        listener,
        &format!("backend listening on {local}"),
        move |req| routes::handle(shared.clone(), req),
    )
    .await
}
