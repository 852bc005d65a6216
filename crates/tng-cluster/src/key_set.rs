//! The cluster's shared key set: a union of keys with absolute lifetimes. Pure logic — the
//! caller passes the time in — so every rule here has a unit test.
//!
//! A key's status follows from the clock alone (Pending before `activated_at`, Active until
//! `stale_at`, Stale until `expire_at`, then kept [`EXPIRY_GRACE`] longer), so nodes holding
//! the same set agree on it without talking. Merging is a union: sets that diverged (a
//! partition, two leaders for a moment) converge by exchanging keys, and the advertised key is
//! chosen by a rule every node evaluates identically.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tng_ohttp::key_ring::{self, KeyEntry, KeyStatus, EXPIRY_GRACE};
use tng_ohttp::keys::ServerKey;

/// How long before the current key goes stale the leader creates its successor: one interval,
/// at most 60 s. The successor travels to every node while Pending, so by the time it becomes
/// Active (and advertised) every node can decrypt with it; and a leader that dies is replaced
/// (failure detection takes a few seconds) long before the successor is due.
pub fn pending_lead(rotation: Duration) -> Duration {
    rotation.min(Duration::from_secs(60))
}

#[derive(Clone, Debug)]
pub struct SharedKey {
    pub key: Arc<ServerKey>,
    pub activated_at: SystemTime,
    pub stale_at: SystemTime,
    pub expire_at: SystemTime,
}

impl SharedKey {
    pub fn status(&self, now: SystemTime) -> KeyStatus {
        if now < self.activated_at {
            KeyStatus::Pending
        } else if now < self.stale_at {
            KeyStatus::Active
        } else {
            KeyStatus::Stale
        }
    }

    fn gone(&self, now: SystemTime) -> bool {
        self.expire_at
            .checked_add(EXPIRY_GRACE)
            .is_some_and(|end| end <= now)
    }
}

/// One key as it travels inside an attested channel. Times are UNIX milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireKey {
    pub key_id: u8,
    /// PKCS#8 PEM of the X25519 private key.
    pub private_key: String,
    pub activated_at: u64,
    pub stale_at: u64,
    pub expire_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WireKeyError {
    #[error("invalid private key: {0}")]
    Key(#[from] tng_ohttp::keys::KeyLoadError),
    #[error(
        "inconsistent lifetime (activated {activated_at}, stale {stale_at}, expire {expire_at})"
    )]
    Lifetime {
        activated_at: u64,
        stale_at: u64,
        expire_at: u64,
    },
}

impl WireKey {
    pub fn decode(&self) -> Result<SharedKey, WireKeyError> {
        if !(self.activated_at <= self.stale_at && self.stale_at <= self.expire_at) {
            return Err(WireKeyError::Lifetime {
                activated_at: self.activated_at,
                stale_at: self.stale_at,
                expire_at: self.expire_at,
            });
        }
        Ok(SharedKey {
            key: Arc::new(ServerKey::from_pkcs8_pem(&self.private_key, self.key_id)?),
            activated_at: from_millis(self.activated_at),
            stale_at: from_millis(self.stale_at),
            expire_at: from_millis(self.expire_at),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: BTreeMap<[u8; 32], SharedKey>,
}

impl KeySet {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn keys(&self) -> impl Iterator<Item = &SharedKey> {
        self.keys.values()
    }

    /// Drops keys past their grace period. Returns whether anything was dropped.
    pub fn prune(&mut self, now: SystemTime) -> bool {
        let before = self.keys.len();
        self.keys.retain(|_, key| !key.gone(now));
        self.keys.len() != before
    }

    /// Adds every key of `other` not held yet (expired ones excepted). Returns whether the set
    /// changed. A key already held keeps its lifetime: the same public key has one origin.
    pub fn merge(&mut self, other: impl IntoIterator<Item = SharedKey>, now: SystemTime) -> bool {
        let mut changed = false;
        for key in other {
            if key.gone(now) {
                continue;
            }
            let pk = *key.key.public_key();
            if let std::collections::btree_map::Entry::Vacant(slot) = self.keys.entry(pk) {
                slot.insert(key);
                changed = true;
            }
        }
        changed
    }

    /// Whether a key is Active now: what a node needs before it may serve.
    pub fn has_active(&self, now: SystemTime) -> bool {
        self.keys
            .values()
            .any(|key| key.status(now) == KeyStatus::Active)
    }

    /// First key of a cluster: Active at once, for one interval.
    pub fn bootstrap(&mut self, rotation: Duration, now: SystemTime) {
        self.insert_new(now, rotation, now);
    }

    /// The leader's rotation step: when the newest key goes stale within [`pending_lead`],
    /// creates its successor, Active from that moment (or now, if the set has no usable key
    /// left). Returns whether a key was created.
    pub fn rotate(&mut self, rotation: Duration, now: SystemTime) -> bool {
        let newest_stale_at = self
            .keys
            .values()
            .map(|key| key.stale_at)
            .max()
            .filter(|stale_at| *stale_at > now);
        match newest_stale_at {
            None => {
                self.insert_new(now, rotation, now);
                true
            }
            Some(stale_at) if stale_at <= now + pending_lead(rotation) => {
                self.insert_new(stale_at, rotation, now);
                true
            }
            Some(_) => false,
        }
    }

    fn insert_new(&mut self, activated_at: SystemTime, rotation: Duration, now: SystemTime) {
        let key_id = self.free_key_id(now);
        let key = SharedKey {
            key: Arc::new(ServerKey::generate(key_id)),
            activated_at,
            stale_at: activated_at + rotation,
            expire_at: activated_at + rotation * 2,
        };
        self.keys.insert(*key.key.public_key(), key);
    }

    fn free_key_id(&self, now: SystemTime) -> u8 {
        key_ring::free_key_id(&self.ring_entries(now), now)
    }

    pub fn holds(&self, public_key: &[u8; 32]) -> bool {
        self.keys.contains_key(public_key)
    }

    /// The key this node advertises. Every node follows the leader's choice when it holds
    /// that key (`leaders`: what the leader gossips; `None` on the leader itself). The leader
    /// keeps advertising its `current` key while it is Active, so merging keys from elsewhere
    /// (a healed partition) never makes it switch to a key the others may not hold yet; when
    /// the current key goes stale it takes the Active key with the greatest
    /// `(expire_at, public key)`, by then held everywhere.
    pub fn choose_advertised(
        &self,
        now: SystemTime,
        current: Option<[u8; 32]>,
        leaders: Option<[u8; 32]>,
    ) -> Option<[u8; 32]> {
        let usable = |pk: &[u8; 32], active_only: bool| {
            self.keys.get(pk).is_some_and(|key| match key.status(now) {
                KeyStatus::Active => true,
                KeyStatus::Stale => !active_only,
                KeyStatus::Pending => false,
            })
        };
        if let Some(pk) = leaders.filter(|pk| usable(pk, false)) {
            return Some(pk);
        }
        if let Some(pk) = current.filter(|pk| usable(pk, true)) {
            return Some(pk);
        }
        key_ring::latest_active(&self.ring_entries(now)).map(|entry| *entry.key.public_key())
    }

    /// A short digest of the set (its public keys), gossiped so nodes notice they differ.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for pk in self.keys.keys() {
            hasher.update(pk);
        }
        hex::encode(&hasher.finalize()[..12])
    }

    /// The entries of the ring the data path reads, with statuses as of `now`.
    pub fn ring_entries(&self, now: SystemTime) -> Vec<KeyEntry> {
        self.keys
            .values()
            .map(|key| KeyEntry {
                key: key.key.clone(),
                status: key.status(now),
                activated_at: key.activated_at,
                stale_at: key.stale_at,
                expire_at: key.expire_at,
            })
            .collect()
    }

    pub fn to_wire(&self) -> Vec<WireKey> {
        self.keys
            .values()
            .filter_map(|key| {
                Some(WireKey {
                    key_id: key.key.key_id(),
                    private_key: key.key.to_pkcs8_pem().ok()?,
                    activated_at: millis(key.activated_at),
                    stale_at: millis(key.stale_at),
                    expire_at: millis(key.expire_at),
                })
            })
            .collect()
    }
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests;
