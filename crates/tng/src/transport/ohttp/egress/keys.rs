//! The egress's key manager: owns the key ring and the task that rotates or reloads it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tng_config::{KeySource, PeerShared};
use tng_ohttp::key_ring::KeyRing;
use tng_ohttp::keys::ServerKey;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::shutdown::Shutdown;

/// How often a file key source is checked for changes.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct KeyManager {
    ring: RwLock<KeyRing>,
    kind: &'static str,
    /// Set for `peer_shared`: the cluster node that fills the ring.
    cluster: OnceLock<Arc<tng_cluster::Node>>,
}

impl KeyManager {
    fn new(ring: KeyRing, kind: &'static str) -> Arc<Self> {
        Arc::new(Self {
            ring: RwLock::new(ring),
            kind,
            cluster: OnceLock::new(),
        })
    }

    /// Builds the ring and spawns the task that keeps it current until shutdown. `field` is
    /// the configuration path of the key (for errors), `so_mark` marks the sockets a
    /// `peer_shared` node opens to its peers and Attestation Service.
    pub async fn start(
        source: &KeySource,
        field: &str,
        so_mark: Option<u32>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Arc<Self>> {
        match source {
            KeySource::SelfGenerated { rotation_interval } => {
                let ring = KeyRing::self_generated(*rotation_interval, SystemTime::now());
                let manager = Self::new(ring, "self_generated");
                tokio::spawn(rotate(manager.clone(), shutdown));
                Ok(manager)
            }
            KeySource::File { path } if path.is_dir() => {
                let dir = super::key_dir::KeyDir::load(path)?;
                info!(path = %path.display(), public_keys = ?dir.present_hex(), "OHTTP keys loaded from a key directory");
                let manager = Self::new(dir.ring(), "file");
                tokio::spawn(watch_dir(manager.clone(), dir, shutdown));
                Ok(manager)
            }
            KeySource::File { path } => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read OHTTP key file {}", path.display()))?;
                let key = ServerKey::from_pkcs8_pem(&pem, 0)
                    .with_context(|| format!("invalid OHTTP key file {}", path.display()))?;
                let manager = Self::new(KeyRing::with_static_key(key, SystemTime::now()), "file");
                tokio::spawn(watch_file(manager.clone(), path.clone(), pem, shutdown));
                Ok(manager)
            }
            KeySource::PeerShared(config) => {
                Self::start_cluster_node(config, field, so_mark, shutdown).await
            }
        }
    }

    async fn start_cluster_node(
        config: &PeerShared,
        field: &str,
        so_mark: Option<u32>,
        mut shutdown: Shutdown,
    ) -> anyhow::Result<Arc<Self>> {
        let auth = tng_cluster::channel::handshake::PeerAuth {
            attester: match &config.ra.attest {
                Some(attest) => Some(crate::attestation::attester(field, attest, so_mark)?),
                None => None,
            },
            verifier: match &config.ra.verify {
                Some(verify) => Some(crate::attestation::verifier(field, verify, so_mark).await?),
                None => None,
            },
        };
        if auth.verifier.is_none() {
            warn!(
                "{field}: peers are not verified (no `verify`): any host that reaches port {} \
                 can obtain this cluster's OHTTP private keys",
                config.port
            );
        }
        let manager = Self::new(KeyRing::from_entries(Vec::new(), None), "peer_shared");
        let sink = {
            let manager = Arc::downgrade(&manager);
            Box::new(move |entries, advertised| {
                if let Some(manager) = manager.upgrade() {
                    *manager.write() = KeyRing::from_entries(entries, advertised);
                }
            })
        };
        let options = tng_cluster::NodeOptions {
            rotation_interval: config.rotation_interval,
            host: config.host.clone(),
            port: config.port,
            peers: config.peers.clone(),
            peers_file: config.peers_file.clone(),
            auth,
            so_mark,
            receive_only: false,
        };
        let node =
            tng_cluster::Node::start(options, sink, async move { shutdown.requested().await })
                .await
                .with_context(|| field.to_owned())?;
        let _ = manager.cluster.set(node);
        Ok(manager)
    }

    /// Whether the egress may serve, for a `peer_shared` node (`None`: always). A cluster
    /// node serves only while it holds an Active key and the key the cluster advertises: a
    /// request encrypted to the cluster's key must never reach a node that cannot decrypt it.
    pub fn serving(&self) -> Option<watch::Receiver<bool>> {
        self.cluster.get().map(|node| node.ready())
    }

    pub fn find(&self, public_key: &[u8]) -> Option<Arc<ServerKey>> {
        self.read().find(public_key)
    }

    pub fn client_visible(&self) -> Option<(Arc<ServerKey>, SystemTime)> {
        self.read().client_visible()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let mut status = self.read().status_json(self.kind);
        if let (Some(node), Some(object)) = (self.cluster.get(), status.as_object_mut()) {
            object.insert("cluster".into(), node.status_json());
        }
        status
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        // A panic while holding the lock cannot leave the ring half-updated in a way that
        // matters more than serving: keep using it.
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.ring.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often the advertised key is looked at for the key metrics.
const OBSERVE_INTERVAL: Duration = Duration::from_secs(1);

impl KeyManager {
    /// Keeps `tng_key_rotations_total` and the active key's age current: whichever source
    /// fills the ring (rotation, a file, the cluster), a change of the advertised key is a
    /// rotation.
    pub fn observe(
        self: &Arc<Self>,
        metrics: tng_telemetry::InstanceMetrics,
        mut shutdown: Shutdown,
    ) {
        let manager = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last: Option<Vec<u8>> = None;
            loop {
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                let current = {
                    let ring = manager.read();
                    ring.client_visible().and_then(|(key, _)| {
                        ring.entries()
                            .iter()
                            .find(|e| e.key.public_key() == key.public_key())
                            .map(|e| (key.public_key().to_vec(), e.activated_at))
                    })
                };
                drop(manager);
                if let Some((public_key, activated_at)) = current {
                    if last.as_ref() != Some(&public_key) {
                        match last {
                            Some(_) => metrics.key_rotated(activated_at),
                            None => metrics.key_active_since(activated_at),
                        }
                        last = Some(public_key);
                    }
                }
                tokio::select! {
                    _ = shutdown.requested() => return,
                    _ = tokio::time::sleep(OBSERVE_INTERVAL) => {}
                }
            }
        });
    }
}

async fn rotate(manager: Arc<KeyManager>, mut shutdown: Shutdown) {
    loop {
        let delay = manager.write().refresh(SystemTime::now());
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn watch_dir(
    manager: Arc<KeyManager>,
    mut dir: super::key_dir::KeyDir,
    mut shutdown: Shutdown,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(FILE_POLL_INTERVAL) => {}
        }
        match dir.rescan(SystemTime::now()) {
            Ok(changed) => {
                failing = false;
                if changed {
                    info!(path = %dir.path().display(), public_keys = ?dir.present_hex(), "OHTTP key directory changed");
                    *manager.write() = dir.ring();
                }
            }
            Err(err) => {
                if !failing {
                    error!(path = %dir.path().display(), "cannot reload the OHTTP key directory, keeping the current keys: {err:#}");
                }
                failing = true;
            }
        }
    }
}

/// What the watcher last saw in the key file, so each change is acted on (and each failure
/// reported) once. An empty file is content like any other, not "unreadable".
#[derive(PartialEq, Eq)]
enum Seen {
    Content(String),
    Unreadable,
}

async fn watch_file(
    manager: Arc<KeyManager>,
    path: PathBuf,
    loaded: String,
    mut shutdown: Shutdown,
) {
    let mut seen = Seen::Content(loaded);
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(FILE_POLL_INTERVAL) => {}
        }
        let current = match tokio::fs::read_to_string(&path).await {
            Ok(text) => Seen::Content(text),
            Err(err) => {
                if seen != Seen::Unreadable {
                    error!(path = %path.display(), "cannot read OHTTP key file, keeping the current key: {err}");
                }
                seen = Seen::Unreadable;
                continue;
            }
        };
        if current == seen {
            continue;
        }
        let Seen::Content(text) = &current else {
            continue;
        };
        match ServerKey::from_pkcs8_pem(text, 0) {
            Ok(key) => {
                info!(path = %path.display(), public_key = %hex::encode(key.public_key()), "OHTTP key file changed, new key active");
                manager.write().replace_static_key(key, SystemTime::now());
            }
            Err(err) => {
                error!(path = %path.display(), "OHTTP key file is invalid, keeping the current key: {err}");
            }
        }
        seen = current;
    }
}
