//! The egress's set of HPKE keys and their rotation (spec §7). Pure logic: the caller passes
//! the current time in and sleeps for the returned delay, so timelines are testable.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::keys::ServerKey;

/// Keys stay decryptable this long past the advertised `expire_timestamp`, covering a peer
/// that refreshes exactly at expiry.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(5);

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// A file key is "stale" after 30 years and "expires" 30 years later, as upstream reports it.
const STATIC_STALE_AFTER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
const STATIC_EXPIRE_AFTER: Duration = Duration::from_secs(60 * 365 * 24 * 3600);
const STATIC_REFRESH: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    Pending,
    Active,
    Stale,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Pending => "Pending",
            KeyStatus::Active => "Active",
            KeyStatus::Stale => "Stale",
        }
    }
}

#[derive(Clone, Debug)]
pub struct KeyEntry {
    pub key: Arc<ServerKey>,
    pub status: KeyStatus,
    pub activated_at: SystemTime,
    pub stale_at: SystemTime,
    pub expire_at: SystemTime,
}

#[derive(Clone, Debug)]
pub struct KeyRing {
    entries: Vec<KeyEntry>,
    /// `None` for a static (file) key, which never rotates.
    rotation: Option<Duration>,
    /// The key to advertise when the owner decides it (a cluster advertising one key on every
    /// node); otherwise [`KeyRing::client_visible`]'s own rule applies.
    advertised: Option<[u8; 32]>,
}

impl KeyRing {
    /// One fresh Active key, advertised for `rotation` and accepted for twice that.
    pub fn self_generated(rotation: Duration, now: SystemTime) -> KeyRing {
        let mut ring = KeyRing {
            entries: Vec::new(),
            rotation: Some(rotation),
            advertised: None,
        };
        ring.generate(rotation, now);
        ring
    }

    pub fn with_static_key(key: ServerKey, now: SystemTime) -> KeyRing {
        let mut ring = KeyRing {
            entries: Vec::new(),
            rotation: None,
            advertised: None,
        };
        ring.replace_static_key(key, now);
        ring
    }

    /// A ring whose keys are managed elsewhere (a cluster sharing one key set): the owner
    /// rebuilds it whenever the set or a key's status changes, and never calls `refresh`.
    /// `advertised` names the key to hand to clients; it is used while the ring holds it and it
    /// is not Pending.
    pub fn from_entries(entries: Vec<KeyEntry>, advertised: Option<[u8; 32]>) -> KeyRing {
        KeyRing {
            entries,
            rotation: None,
            advertised,
        }
    }

    /// A reloaded key file replaces the old key at once: requests still using the old key get
    /// 422 and refetch, as upstream behaves.
    pub fn replace_static_key(&mut self, key: ServerKey, now: SystemTime) {
        self.entries = vec![KeyEntry {
            key: Arc::new(key),
            status: KeyStatus::Active,
            activated_at: now,
            stale_at: add(now, STATIC_STALE_AFTER),
            expire_at: add(now, STATIC_EXPIRE_AFTER),
        }];
    }

    /// One rotation step; returns how long to wait before the next one.
    pub fn refresh(&mut self, now: SystemTime) -> Duration {
        let Some(rotation) = self.rotation else {
            return STATIC_REFRESH;
        };
        for entry in &mut self.entries {
            if entry.status == KeyStatus::Active && entry.stale_at <= now {
                entry.status = KeyStatus::Stale;
            }
        }
        self.entries
            .retain(|entry| add(entry.expire_at, EXPIRY_GRACE) > now);
        if !self
            .entries
            .iter()
            .any(|entry| entry.status == KeyStatus::Active)
        {
            self.generate(rotation, now);
        }
        let next = self
            .entries
            .iter()
            .flat_map(|entry| {
                let stale = (entry.status != KeyStatus::Stale).then_some(entry.stale_at);
                stale
                    .into_iter()
                    .chain([add(entry.expire_at, EXPIRY_GRACE)])
            })
            .fold(add(now, rotation), SystemTime::min);
        next.duration_since(now)
            .unwrap_or_default()
            .max(MIN_REFRESH)
    }

    fn generate(&mut self, rotation: Duration, now: SystemTime) {
        let key_id = self.free_key_id(now);
        self.entries.push(KeyEntry {
            key: Arc::new(ServerKey::generate(key_id)),
            status: KeyStatus::Active,
            activated_at: now,
            stale_at: add(now, rotation),
            expire_at: add(now, rotation.saturating_mul(2)),
        });
    }

    fn free_key_id(&self, now: SystemTime) -> u8 {
        free_key_id(&self.entries, now)
    }

    /// Any held key (Active or Stale) with exactly this public key.
    pub fn find(&self, public_key: &[u8]) -> Option<Arc<ServerKey>> {
        self.entries
            .iter()
            .find(|entry| entry.key.public_key().as_slice() == public_key)
            .map(|entry| entry.key.clone())
    }

    /// The key to advertise, with its `expire_at`: the owner's choice when set and held (not
    /// Pending), else the Active key with the greatest `(expire_at, public_key)`.
    pub fn client_visible(&self) -> Option<(Arc<ServerKey>, SystemTime)> {
        let chosen = self.advertised.and_then(|pk| {
            self.entries
                .iter()
                .find(|entry| entry.status != KeyStatus::Pending && *entry.key.public_key() == pk)
        });
        chosen
            .or_else(|| latest_active(&self.entries))
            .map(|entry| (entry.key.clone(), entry.expire_at))
    }

    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// The `/status` view of the ring (upstream's field names, including `actived_at`).
    pub fn status_json(&self, key_manager_type: &str) -> serde_json::Value {
        let local_keys: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|entry| {
                serde_json::json!({
                    "key_id": entry.key.key_id(),
                    "public_key": hex::encode(entry.key.public_key()),
                    "status": entry.status.as_str(),
                    "actived_at": rfc3339(entry.activated_at),
                    "stale_at": rfc3339(entry.stale_at),
                    "expire_at": rfc3339(entry.expire_at),
                })
            })
            .collect();
        serde_json::json!({
            "key_manager_type": key_manager_type,
            "local_keys": local_keys,
        })
    }
}

/// Smallest id in 0..=254 not used by a key that is still within its advertised lifetime.
/// Keys only kept for the grace period do not block their id, so ids alternate 0, 1, 0… as
/// upstream's do; lookups go by public key, so a shared id is harmless.
pub fn free_key_id(entries: &[KeyEntry], now: SystemTime) -> u8 {
    (0..=254u8)
        .find(|id| {
            !entries
                .iter()
                .any(|e| e.key.key_id() == *id && e.expire_at > now)
        })
        .unwrap_or(0)
}

/// The Active key with the greatest `(expire_at, public_key)`: the advertised key when nobody
/// chose one, a rule every holder of the same entries evaluates identically.
pub fn latest_active(entries: &[KeyEntry]) -> Option<&KeyEntry> {
    entries
        .iter()
        .filter(|entry| entry.status == KeyStatus::Active)
        .max_by(|a, b| (a.expire_at, a.key.public_key()).cmp(&(b.expire_at, b.key.public_key())))
}

/// humantime panics before the epoch and fails after year 9999; neither happens with a sane
/// clock, but a status page must not be able to crash the process.
fn rfc3339(t: SystemTime) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if t < SystemTime::UNIX_EPOCH
        || write!(out, "{}", humantime::format_rfc3339_seconds(t)).is_err()
    {
        out = format!("{t:?}");
    }
    out
}

/// `t + d`, saturating far in the future instead of panicking on overflow.
fn add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .or_else(|| t.checked_add(YEAR.saturating_mul(1000)))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests;
