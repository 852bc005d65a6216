//! The HTTP serving loop the devkit's servers share: HTTP/1.1 + h2c until SIGTERM/SIGINT,
//! then a short drain.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Prints `ready_line` (the one line tests wait for) once the signal handlers are in place, so
/// a stop request can never arrive before we are able to honour it, then serves `handler`.
pub async fn serve_until_signal<H, Fut, B>(
    listener: TcpListener,
    ready_line: &str,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready_line}")?;
        out.flush()?;
    }
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
        let handler = handler.clone();
        let service = service_fn(handler);
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
