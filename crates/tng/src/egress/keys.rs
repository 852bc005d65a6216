//! The egress's key manager: owns the key ring and the task that rotates or reloads it.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tng_config::KeySource;
use tng_ohttp::key_ring::KeyRing;
use tng_ohttp::keys::ServerKey;
use tracing::{error, info};

use crate::shutdown::Shutdown;

/// How often a file key source is checked for changes.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct KeyManager {
    ring: RwLock<KeyRing>,
    kind: &'static str,
}

impl KeyManager {
    /// Builds the ring and spawns the task that keeps it current until shutdown.
    pub fn start(source: &KeySource, shutdown: Shutdown) -> anyhow::Result<Arc<Self>> {
        match source {
            KeySource::SelfGenerated { rotation_interval } => {
                let ring = KeyRing::self_generated(*rotation_interval, SystemTime::now());
                let manager = Arc::new(Self {
                    ring: RwLock::new(ring),
                    kind: "self_generated",
                });
                tokio::spawn(rotate(manager.clone(), shutdown));
                Ok(manager)
            }
            KeySource::File { path } => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read OHTTP key file {}", path.display()))?;
                let key = ServerKey::from_pkcs8_pem(&pem, 0)
                    .with_context(|| format!("invalid OHTTP key file {}", path.display()))?;
                let manager = Arc::new(Self {
                    ring: RwLock::new(KeyRing::with_static_key(key, SystemTime::now())),
                    kind: "file",
                });
                tokio::spawn(watch_file(manager.clone(), path.clone(), pem, shutdown));
                Ok(manager)
            }
            KeySource::PeerShared(_) => {
                anyhow::bail!("ohttp.key.source \"peer_shared\" is not supported yet")
            }
        }
    }

    pub fn find(&self, public_key: &[u8]) -> Option<Arc<ServerKey>> {
        self.read().find(public_key)
    }

    pub fn client_visible(&self) -> Option<(Arc<ServerKey>, SystemTime)> {
        self.read().client_visible()
    }

    pub fn status_json(&self) -> serde_json::Value {
        self.read().status_json(self.kind)
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

async fn rotate(manager: Arc<KeyManager>, mut shutdown: Shutdown) {
    loop {
        let delay = manager.write().refresh(SystemTime::now());
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn watch_file(
    manager: Arc<KeyManager>,
    path: PathBuf,
    mut loaded: String,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(FILE_POLL_INTERVAL) => {}
        }
        let current = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(err) => {
                if !loaded.is_empty() {
                    error!(path = %path.display(), "cannot read OHTTP key file, keeping the current key: {err}");
                    loaded.clear();
                }
                continue;
            }
        };
        if current == loaded {
            continue;
        }
        match ServerKey::from_pkcs8_pem(&current, 0) {
            Ok(key) => {
                info!(path = %path.display(), public_key = %hex::encode(key.public_key()), "OHTTP key file changed, new key active");
                manager.write().replace_static_key(key, SystemTime::now());
            }
            Err(err) => {
                error!(path = %path.display(), "OHTTP key file is invalid, keeping the current key: {err}");
            }
        }
        loaded = current;
    }
}
