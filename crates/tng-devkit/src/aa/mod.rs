//! A software Attestation Agent: the Confidential Containers AA ttrpc API over a unix socket,
//! answering with `sample` TEE evidence, for machines without TEE hardware.

mod evidence;
mod proto;
mod service;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};

use evidence::MeasureRegister;

const DEFAULT_SOCKET: &str =
    "unix:///run/confidential-containers/attestation-agent/attestation-agent.sock";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Socket address, `unix:///absolute/path.sock`.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: String,
    /// The sample TEE's 32-byte measurement register, as 64 hex digits (default: zeros).
    #[arg(long, value_name = "HEX")]
    measure_register: Option<MeasureRegister>,
    /// Test knob ("tampered evidence"): report evidence whose `report_data` is NOT the runtime
    /// data the caller asked for (its first byte inverted), i.e. evidence not bound to the
    /// caller's key or challenge. An Attestation Service must refuse it.
    #[arg(long)]
    wrong_report_data: bool,
}

/// Serves until SIGTERM/SIGINT, then closes connections and removes the socket file.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = socket_path(&args.socket)?;
    prepare_socket_path(&path)?;
    let agent = service::SampleAgent {
        register: args.measure_register.unwrap_or_default(),
        wrong_report_data: args.wrong_report_data,
    };
    let services =
        proto::attestation_agent_ttrpc::create_attestation_agent_service(Arc::new(agent));
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut server = ttrpc::asynchronous::Server::new()
        .bind(&format!("unix://{}", path.display()))
        .with_context(|| format!("cannot listen on {}", path.display()))?
        .register_service(services);
    server
        .start()
        .await
        .with_context(|| format!("cannot serve on {}", path.display()))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "attestation agent listening on {}", path.display())?;
        out.flush()?;
    }
    tokio::select! {
        _ = sigterm.recv() => {},
        _ = sigint.recv() => {},
    }
    tracing::info!("shutting down");
    let stopped = server.shutdown().await;
    let removed = std::fs::remove_file(&path);
    stopped.context("ttrpc server shutdown")?;
    removed.with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(())
}

/// `unix:///a/b.sock` → `/a/b.sock`; only absolute filesystem sockets are accepted, like TNG.
fn socket_path(address: &str) -> anyhow::Result<PathBuf> {
    match address.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => bail!("--socket must look like unix:///absolute/path.sock, got {address:?}"),
    }
}

/// Creates the parent directory and removes a socket left by an earlier run; refuses to delete
/// anything that is not a socket.
fn prepare_socket_path(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display())),
        Ok(_) => bail!("{} exists and is not a socket", path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_address_must_be_absolute_unix() {
        assert_eq!(
            socket_path("unix:///run/x.sock").expect("valid"),
            PathBuf::from("/run/x.sock")
        );
        assert!(socket_path("unix://run/x.sock").is_err());
        assert!(socket_path("/run/x.sock").is_err());
    }
}
