//! Start-up order, readiness and shutdown of a configured gateway.
//!
//! Every ingress (in order), then every egress, then the control interface is constructed —
//! listeners bound, key managers started — before anything serves, so a start-up failure
//! leaves nothing half-running. `/readyz` turns 200 once every service accepts connections.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderName;
use tng_config::{Config, EgressMode, HeaderList, IngressMode};
use tng_ohttp::passthrough::HeaderPassthrough;
use tracing::{info, warn};

use crate::control::ControlInterface;
use crate::egress::keys::KeyManager;
use crate::egress::EgressInstance;
use crate::ingress::key_cache::KeyCache;
use crate::ingress::IngressInstance;
use crate::shutdown;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let (trigger, shutdown) = shutdown::channel();
    let status = Status::default();
    let readiness = Readiness::new(config.ingress.len() + config.egress.len());
    let uses_netfilter = config
        .ingress
        .iter()
        .any(|i| matches!(i.mode, IngressMode::Netfilter(_)))
        || config
            .egress
            .iter()
            .any(|e| matches!(e.mode, EgressMode::Netfilter(_)));
    // Held for the life of the process: two gateways in one namespace would fight over rules.
    let _lock = if uses_netfilter {
        Some(tng_capture::lock::acquire()?)
    } else {
        None
    };

    let mut ingresses = Vec::new();
    for ingress in &config.ingress {
        ingresses.push(IngressInstance::bind(ingress, &status).await?);
    }
    let mut egresses = Vec::new();
    for egress in &config.egress {
        egresses.push(EgressInstance::bind(egress, &shutdown, &status).await?);
    }
    let control = match &config.control_interface {
        Some(control) => {
            Some(ControlInterface::bind(control, status.clone(), readiness.clone()).await?)
        }
        None => None,
    };

    let mut tasks = Vec::new();
    for ingress in ingresses {
        tasks.push(tokio::spawn(
            ingress.serve(shutdown.clone(), readiness.clone()),
        ));
    }
    for egress in egresses {
        tasks.push(tokio::spawn(
            egress.serve(shutdown.clone(), readiness.clone()),
        ));
    }
    if let Some(control) = control {
        tasks.push(tokio::spawn(control.serve(shutdown.clone())));
    }
    if config.ingress.is_empty() && config.egress.is_empty() {
        warn!("the configuration defines no ingress and no egress");
    }
    info!("tng started");

    let signal = shutdown::signal().await?;
    info!("{signal} received: no longer accepting connections, draining in-flight requests");
    trigger.trigger();
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Counts services that have not started accepting yet.
#[derive(Clone)]
pub struct Readiness {
    pending: Arc<AtomicUsize>,
}

impl Readiness {
    pub fn new(services: usize) -> Self {
        Self {
            pending: Arc::new(AtomicUsize::new(services)),
        }
    }

    pub fn service_ready(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// A service that stopped accepting (a cluster node that lost the cluster's keys).
    pub fn service_unready(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}

/// What `/status/...` reports, registered by each instance as it is built.
#[derive(Clone, Default)]
pub struct Status {
    inner: Arc<Mutex<StatusInner>>,
}

#[derive(Default)]
struct StatusInner {
    egress: BTreeMap<usize, Arc<KeyManager>>,
    ingress: BTreeMap<usize, Arc<KeyCache>>,
}

impl Status {
    pub fn add_egress(&self, id: usize, keys: Arc<KeyManager>) {
        self.lock().egress.insert(id, keys);
    }

    pub fn add_ingress(&self, id: usize, keys: Arc<KeyCache>) {
        self.lock().ingress.insert(id, keys);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves a `/status/...` path (segments after `status`) to its JSON document.
    pub fn lookup(&self, segments: &[&str]) -> Option<serde_json::Value> {
        use serde_json::json;
        let inner = self.lock();
        let ids = |keys: Vec<&usize>| json!(keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        match segments {
            [] | [""] => {
                let mut kinds = Vec::new();
                if !inner.egress.is_empty() {
                    kinds.push("egress");
                }
                if !inner.ingress.is_empty() {
                    kinds.push("ingress");
                }
                Some(json!(kinds))
            }
            ["egress"] => Some(ids(inner.egress.keys().collect())),
            ["ingress"] => Some(ids(inner.ingress.keys().collect())),
            [kind, id] | [kind, id, "ohttp"] | [kind, id, "ohttp", "keys"] => {
                let id: usize = id.parse().ok()?;
                let exists = match *kind {
                    "egress" => inner.egress.contains_key(&id),
                    "ingress" => inner.ingress.contains_key(&id),
                    _ => false,
                };
                if !exists {
                    return None;
                }
                match segments.len() {
                    2 => Some(json!(["ohttp"])),
                    3 => Some(json!(["keys"])),
                    _ if *kind == "egress" => inner.egress.get(&id).map(|k| k.status_json()),
                    _ => inner.ingress.get(&id).map(|k| k.status_json()),
                }
            }
            _ => None,
        }
    }
}

/// Refuses, before anything is bound, what the configuration may say but this build does not
/// do yet. Attestation above all: running without it when the operator asked for it would
/// silently drop the security guarantee.
pub fn check_supported(config: &Config) -> anyhow::Result<()> {
    let entries = config
        .ingress
        .iter()
        .map(|i| ("add_ingress", i.id, &i.ra, i.ohttp.is_some(), None))
        .chain(config.egress.iter().map(|e| {
            let key = e.ohttp.as_ref().map(|o| &o.key);
            ("add_egress", e.id, &e.ra, e.ohttp.is_some(), key)
        }));
    for (kind, id, ra, has_ohttp, key) in entries {
        if let Some(attest) = &ra.attest {
            crate::attestation::check_agent_socket(&format!("{kind}[{id}]"), attest)?;
        }
        if !has_ohttp {
            anyhow::bail!(
                "{kind}[{id}]: the rats_tls transport (no `ohttp` object) is not supported yet"
            );
        }
        if let Some(tng_config::KeySource::PeerShared(peer)) = key {
            if let Some(attest) = &peer.ra.attest {
                crate::attestation::check_agent_socket(&format!("{kind}[{id}].ohttp.key"), attest)?;
            }
        }
    }
    Ok(())
}

pub fn passthrough(list: &HeaderList) -> HeaderPassthrough {
    match list {
        HeaderList::All => HeaderPassthrough::All,
        HeaderList::Names(names) => HeaderPassthrough::Names(
            names
                .iter()
                // An invalid header name can never match a real header, so dropping it is exact.
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        ),
    }
}
