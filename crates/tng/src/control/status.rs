//! `/status/...`: what each instance registers about itself as it is built.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::transport::ohttp::egress::keys::KeyManager;
use crate::transport::ohttp::ingress::key_cache::KeyCache;

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
