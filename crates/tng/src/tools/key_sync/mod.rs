//! `tng tools key-sync`: a member of a `peer_shared` cluster that only receives the cluster's
//! keys (over the same mutually attested channel the egress nodes use) and writes them to a
//! directory for consumers that are not TNG. Layout in [`out`].
//!
//! It never creates, rotates or hands out keys: it gossips that it holds none, so it is never
//! the rotation leader and no node asks it for keys, and it opens no peer-channel listener.

mod out;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use tracing::info;

use self::out::{OutDir, Snapshot};

#[derive(Args, Debug)]
pub struct KeySyncArgs {
    /// address to bind (UDP gossip); `0.0.0.0` advertises the address used towards the first
    /// peer
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// cluster port (the egress nodes' `key.port`)
    #[arg(long, default_value_t = 8301)]
    port: u16,
    /// a cluster node, `HOST[:PORT]` (repeatable)
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<String>,
    /// file of cluster nodes (newlines, commas or spaces; `#` comments), re-read every second
    #[arg(long, value_name = "PATH")]
    peers_file: Option<PathBuf>,
    /// the cluster's `rotation_interval`, in seconds
    #[arg(long, default_value_t = 300)]
    rotation_interval: u64,
    /// `attest` object (inline JSON or a file): this member's own attestation to the nodes
    #[arg(long, value_name = "JSON")]
    attest: String,
    /// `verify` object (inline JSON or a file): how the nodes' attestation is checked
    #[arg(long, value_name = "JSON")]
    verify: String,
    /// directory receiving `current/`, `next/`, `expired/` and `cluster.json`
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// written once the first key set is in `--out-dir`
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// How often `cluster.json` is compared with the node's view (membership changes without a
/// key change).
const STATUS_POLL: Duration = Duration::from_secs(1);

pub async fn run(args: KeySyncArgs) -> anyhow::Result<()> {
    if args.rotation_interval == 0 {
        anyhow::bail!("--rotation-interval: must be > 0");
    }
    if args.peers.is_empty() && args.peers_file.is_none() {
        anyhow::bail!(
            "no cluster node to receive keys from: give --peer ADDR (repeatable) or --peers-file PATH"
        );
    }
    let attest_text = crate::tools::json_argument(&args.attest, "--attest")?;
    let attest = tng_config::parse_attest_json(&attest_text, "--attest")?;
    let verify_text = crate::tools::json_argument(&args.verify, "--verify")?;
    let verify = tng_config::parse_verify_json(&verify_text, "--verify")?;
    if attest.aa_provider == tng_config::AaProvider::Coco {
        let socket = attest.aa_addr.trim_start_matches("unix://");
        if !std::path::Path::new(socket).exists() {
            anyhow::bail!("--attest.aa_addr: Attestation Agent socket file {socket} not found");
        }
    }
    let mut out = OutDir::create(&args.out_dir)?;
    if let Some(path) = &args.ready_file {
        // A ready file left by an earlier run must not announce keys this run has not written.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("--ready-file {}: cannot remove", path.display()))
            }
        }
    }
    let auth = tng_cluster::channel::handshake::PeerAuth {
        attester: Some(Arc::new(
            tng_attest::Attester::new(&attest, None).context("--attest")?,
        )),
        verifier: Some(Arc::new(
            tng_attest::Verifier::new(&verify, None)
                .await
                .context("--verify")?,
        )),
    };
    let (snapshots, mut updates) = watch::channel(Snapshot::default());
    let sink: tng_cluster::node::RingSink = Box::new(move |entries, advertised| {
        snapshots.send_if_modified(|current| {
            let next = Snapshot::new(&entries, advertised);
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = tng_cluster::NodeOptions {
        rotation_interval: Duration::from_secs(args.rotation_interval),
        host: args.host.clone(),
        port: args.port,
        peers: args.peers.clone(),
        peers_file: args.peers_file.clone(),
        auth,
        so_mark: None,
        receive_only: true,
    };
    let node = tng_cluster::Node::start(options, sink, async move {
        let _ = stop_rx.await;
    })
    .await?;
    info!(
        node_id = node.node_id(),
        out_dir = %args.out_dir.display(),
        "key-sync: receive-only cluster member started"
    );

    let mut ready_written = false;
    let mut status_poll = tokio::time::interval(STATUS_POLL);
    let signal = crate::shutdown::signal();
    tokio::pin!(signal);
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            sig = &mut signal => {
                info!("key-sync: {} received, stopping", sig.unwrap_or("signal"));
                break Ok(());
            }
            changed = updates.changed() => {
                if changed.is_err() {
                    break Err(anyhow::anyhow!("the cluster node stopped"));
                }
            }
            _ = status_poll.tick() => {}
        }
        let snapshot = updates.borrow_and_update().clone();
        // Read before the status is written: the ready file then never announces a directory
        // whose `cluster.json` still says `"ready": false`.
        let node_ready = *node.ready().borrow();
        if let Err(err) = out.write(&snapshot, &node.status_json()) {
            // A full disk or a vanished directory: keep the node and try again next round.
            tracing::error!("key-sync: {err:#}");
            continue;
        }
        if !ready_written && snapshot.has_current() && node_ready {
            if let Some(path) = &args.ready_file {
                let body = serde_json::json!({
                    "node_id": node.node_id(),
                    "out_dir": args.out_dir.display().to_string(),
                    "ready_at": crate::tools::time::unix_now(),
                });
                crate::tools::fs::write_atomic(path, body.to_string().as_bytes(), 0o644)
                    .with_context(|| format!("--ready-file {}", path.display()))?;
            }
            info!(keys = snapshot.len(), "key-sync: first key set written");
            ready_written = true;
        }
    };
    let _ = stop_tx.send(());
    result
}
