//! `key.source: "file"` with `path` a directory (such as `tng tools key-sync`'s `current/`):
//! every `*.key` (PKCS#8 PEM) in it is a key this egress decrypts with. A `<name>.meta.json`
//! next to a key (written by key-sync) gives its key id, lifetime and whether the cluster
//! advertises it; without one the key is treated like a single key file's.
//!
//! A key that leaves the directory stays accepted until the expiry its metadata named (a
//! rotation moves the old key to `expired/`, and clients still holding it must not fail); a
//! key without metadata is dropped at once, as a replaced key file is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tng_ohttp::key_ring::{latest_active, KeyEntry, KeyRing, KeyStatus, EXPIRY_GRACE};
use tng_ohttp::keys::ServerKey;

/// What a key without metadata gets (as a single key file's key): practically no expiry.
const NO_META_STALE_AFTER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
const NO_META_EXPIRE_AFTER: Duration = Duration::from_secs(60 * 365 * 24 * 3600);

#[derive(Clone)]
struct Held {
    entry: KeyEntry,
    /// The metadata named its lifetime (so it may outlive its file).
    has_meta: bool,
    advertised: bool,
}

pub struct KeyDir {
    path: PathBuf,
    /// File name → contents, as last read.
    files: BTreeMap<String, String>,
    /// Keys in the directory now.
    present: BTreeMap<[u8; 32], Held>,
    /// Keys that left the directory, kept until their expiry.
    retained: BTreeMap<[u8; 32], Held>,
}

impl KeyDir {
    /// Reads the directory; it must hold at least one usable key.
    pub fn load(path: &Path) -> anyhow::Result<KeyDir> {
        let mut dir = KeyDir {
            path: path.to_path_buf(),
            files: BTreeMap::new(),
            present: BTreeMap::new(),
            retained: BTreeMap::new(),
        };
        let files = read_files(path)?;
        dir.apply(files, SystemTime::now())?;
        if dir.present.is_empty() {
            anyhow::bail!("OHTTP key directory {} holds no *.key file", path.display());
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the directory. Returns whether the ring changed (keys came, went or expired).
    pub fn rescan(&mut self, now: SystemTime) -> anyhow::Result<bool> {
        let files = read_files(&self.path)?;
        let before = self.retained.len();
        self.retained.retain(|_, held| end_of(&held.entry) > now);
        let expired = self.retained.len() != before;
        if files == self.files {
            return Ok(expired);
        }
        self.apply(files, now)?;
        Ok(true)
    }

    fn apply(&mut self, files: BTreeMap<String, String>, now: SystemTime) -> anyhow::Result<()> {
        let mut present = BTreeMap::new();
        for (name, text) in &files {
            let Some(stem) = name.strip_suffix(".key") else {
                continue;
            };
            let meta = files
                .get(&format!("{stem}.meta.json"))
                .map(|text| parse_meta(text))
                .transpose()
                .with_context(|| format!("{}/{stem}.meta.json", self.path.display()))?;
            let key_id = meta.as_ref().map_or(0, |m| m.key_id);
            let key = ServerKey::from_pkcs8_pem(text, key_id).with_context(|| {
                format!("invalid OHTTP key file {}/{name}", self.path.display())
            })?;
            let pk = *key.public_key();
            let (activated_at, stale_at, expire_at) = match &meta {
                Some(m) => (m.activated_at, m.stale_at, m.expire_at),
                // Keep the first sighting's times, so a rescan does not renew the key.
                None => match self.present.get(&pk) {
                    Some(held) if !held.has_meta => (
                        held.entry.activated_at,
                        held.entry.stale_at,
                        held.entry.expire_at,
                    ),
                    _ => (now, now + NO_META_STALE_AFTER, now + NO_META_EXPIRE_AFTER),
                },
            };
            present.insert(
                pk,
                Held {
                    entry: KeyEntry {
                        key: Arc::new(key),
                        status: KeyStatus::Active,
                        activated_at,
                        stale_at,
                        expire_at,
                    },
                    has_meta: meta.is_some(),
                    advertised: meta.as_ref().is_some_and(|m| m.advertised),
                },
            );
        }
        for (pk, held) in std::mem::take(&mut self.present) {
            if present.contains_key(&pk) || !held.has_meta || end_of(&held.entry) <= now {
                continue;
            }
            let mut held = held;
            held.entry.status = KeyStatus::Stale;
            held.advertised = false;
            self.retained.insert(pk, held);
        }
        for pk in present.keys() {
            self.retained.remove(pk);
        }
        self.present = present;
        self.files = files;
        Ok(())
    }

    /// The ring: present keys Active, retained ones Stale; the advertised key is the one the
    /// metadata marks, else the present key with the latest expiry.
    pub fn ring(&self) -> KeyRing {
        let entries: Vec<KeyEntry> = self
            .present
            .values()
            .chain(self.retained.values())
            .map(|held| held.entry.clone())
            .collect();
        let advertised = self
            .present
            .iter()
            .find(|(_, held)| held.advertised)
            .map(|(pk, _)| *pk)
            .or_else(|| {
                let present: Vec<KeyEntry> =
                    self.present.values().map(|h| h.entry.clone()).collect();
                latest_active(&present).map(|e| *e.key.public_key())
            });
        KeyRing::from_entries(entries, advertised)
    }

    /// Public keys in the directory (for log lines).
    pub fn present_hex(&self) -> Vec<String> {
        self.present.keys().map(hex::encode).collect()
    }
}

fn end_of(entry: &KeyEntry) -> SystemTime {
    entry
        .expire_at
        .checked_add(EXPIRY_GRACE)
        .unwrap_or(entry.expire_at)
}

struct Meta {
    key_id: u8,
    activated_at: SystemTime,
    stale_at: SystemTime,
    expire_at: SystemTime,
    advertised: bool,
}

fn parse_meta(text: &str) -> anyhow::Result<Meta> {
    let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let ms = |field: &str| -> anyhow::Result<SystemTime> {
        let ms = value
            .get(field)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("{field}: missing or not an integer"))?;
        Ok(UNIX_EPOCH + Duration::from_millis(ms))
    };
    let key_id = value
        .get("key_id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|id| u8::try_from(id).ok())
        .context("key_id: missing or not 0..=255")?;
    let (activated_at, stale_at, expire_at) = (
        ms("activated_at_ms")?,
        ms("stale_at_ms")?,
        ms("expire_at_ms")?,
    );
    if !(activated_at <= stale_at && stale_at <= expire_at) {
        anyhow::bail!("inconsistent lifetime (activated_at_ms, stale_at_ms, expire_at_ms)");
    }
    Ok(Meta {
        key_id,
        activated_at,
        stale_at,
        expire_at,
        advertised: value
            .get("advertised")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    })
}

/// `*.key` and `*.meta.json` files of the directory (temporary files of writers skipped).
fn read_files(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(path)
        .with_context(|| format!("cannot read OHTTP key directory {}", path.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read OHTTP key directory {}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !(name.ends_with(".key") || name.ends_with(".meta.json")) {
            continue;
        }
        match std::fs::read_to_string(entry.path()) {
            Ok(text) => {
                files.insert(name, text);
            }
            // Renamed away between the listing and the read: the next scan sees the result.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", entry.path().display()))
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(dir: &Path, key: &ServerKey, meta: Option<(u64, u64, u64, bool)>) -> String {
        let hex = hex::encode(key.public_key());
        if let Some((a, s, e, adv)) = meta {
            let meta = serde_json::json!({"key_id": key.key_id(), "activated_at_ms": a,
                "stale_at_ms": s, "expire_at_ms": e, "advertised": adv});
            std::fs::write(dir.join(format!("{hex}.meta.json")), meta.to_string()).unwrap();
        }
        std::fs::write(dir.join(format!("{hex}.key")), key.to_pkcs8_pem().unwrap()).unwrap();
        hex
    }

    #[test]
    fn a_key_leaving_the_directory_stays_accepted_until_its_expiry() {
        let dir = std::env::temp_dir().join(format!("tng-keydir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now_ms = tng_cluster::key_set::millis(SystemTime::now());
        let a = ServerKey::generate(0);
        let b = ServerKey::generate(1);
        let ha = write_key(
            &dir,
            &a,
            Some((now_ms, now_ms + 5_000, now_ms + 10_000, true)),
        );
        let mut keys = KeyDir::load(&dir).unwrap();
        let ring = keys.ring();
        assert_eq!(
            ring.client_visible().unwrap().0.public_key(),
            a.public_key()
        );

        // Rotation: b arrives (advertised), a leaves.
        write_key(
            &dir,
            &b,
            Some((now_ms + 5_000, now_ms + 10_000, now_ms + 15_000, true)),
        );
        std::fs::remove_file(dir.join(format!("{ha}.key"))).unwrap();
        std::fs::remove_file(dir.join(format!("{ha}.meta.json"))).unwrap();
        assert!(keys.rescan(SystemTime::now()).unwrap());
        let ring = keys.ring();
        assert_eq!(
            ring.client_visible().unwrap().0.public_key(),
            b.public_key()
        );
        assert!(
            ring.find(a.public_key()).is_some(),
            "the old key is still accepted"
        );
        assert_eq!(ring.find(b.public_key()).unwrap().key_id(), 1);

        // Past a's expiry (+ grace) it is gone.
        let later = UNIX_EPOCH + Duration::from_millis(now_ms + 16_000);
        assert!(keys.rescan(later).unwrap());
        assert!(keys.ring().find(a.public_key()).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_directory_is_refused_and_a_key_without_meta_goes_at_once() {
        let dir = std::env::temp_dir().join(format!("tng-keydir-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let err = KeyDir::load(&dir).err().unwrap().to_string();
        assert!(err.contains("holds no *.key file"), "{err}");
        let a = ServerKey::generate(0);
        let ha = write_key(&dir, &a, None);
        let mut keys = KeyDir::load(&dir).unwrap();
        let b = ServerKey::generate(0);
        write_key(&dir, &b, None);
        std::fs::remove_file(dir.join(format!("{ha}.key"))).unwrap();
        assert!(keys.rescan(SystemTime::now()).unwrap());
        assert!(keys.ring().find(a.public_key()).is_none());
        assert!(keys.ring().find(b.public_key()).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
