//! The output directory of `tng tools key-sync`:
//!
//! ```text
//! DIR/current/<public key hex>.key        Active keys (PKCS#8 PEM, mode 0600)
//! DIR/current/<public key hex>.meta.json  key id, status, lifetime, whether it is advertised
//! DIR/next/…                              Pending keys (the successor, before its hand-over)
//! DIR/expired/…                           Stale keys (no longer advertised, still accepted)
//! DIR/cluster.json                        this member's view of the cluster
//! ```
//!
//! Every file is replaced atomically (temporary file + rename). A key's `.meta.json` is written
//! before its `.key` and removed after it, so a consumer that finds a `.key` also finds its
//! metadata; a key moving between directories appears in its new place before it leaves the
//! old one. Files no longer part of the set are removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde_json::{json, Value};
use tng_ohttp::key_ring::{KeyEntry, KeyStatus};

use crate::tools::fs::{ensure_dir, sync_dir, write_atomic};

const DIRS: [&str; 3] = ["current", "next", "expired"];

/// The key set to write, as file name → contents per directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `dir → (public key hex → (pem, meta json))`.
    dirs: BTreeMap<&'static str, BTreeMap<String, (String, String)>>,
}

fn dir_of(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "current",
        KeyStatus::Pending => "next",
        KeyStatus::Stale => "expired",
    }
}

fn millis(t: SystemTime) -> u64 {
    tng_cluster::key_set::millis(t)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Snapshot {
    pub fn new(entries: &[KeyEntry], advertised: Option<[u8; 32]>) -> Snapshot {
        let mut dirs: BTreeMap<&'static str, BTreeMap<String, (String, String)>> =
            DIRS.iter().map(|d| (*d, BTreeMap::new())).collect();
        for entry in entries {
            let Ok(pem) = entry.key.to_pkcs8_pem() else {
                tracing::error!(
                    public_key = %hex::encode(entry.key.public_key()),
                    "key-sync: cannot encode a key as PKCS#8, skipped"
                );
                continue;
            };
            let public_key = hex::encode(entry.key.public_key());
            let meta = json!({
                "public_key": public_key,
                "key_id": entry.key.key_id(),
                "status": entry.status.as_str(),
                "advertised": advertised == Some(*entry.key.public_key()),
                "activated_at_ms": millis(entry.activated_at),
                "stale_at_ms": millis(entry.stale_at),
                "expire_at_ms": millis(entry.expire_at),
                "activated_at": rfc3339(entry.activated_at),
                "stale_at": rfc3339(entry.stale_at),
                "expire_at": rfc3339(entry.expire_at),
                "kem": "X25519Sha256",
                "symmetric_suites": entry.key.config().aeads.iter()
                    .map(|a| tng_ohttp::keys::suite_label(tng_ohttp::keys::KDF_HKDF_SHA256, a.id()))
                    .collect::<Vec<_>>(),
            });
            let mut meta = serde_json::to_string_pretty(&meta).unwrap_or_default();
            meta.push('\n');
            if let Some(files) = dirs.get_mut(dir_of(entry.status)) {
                files.insert(public_key, (pem, meta));
            }
        }
        Snapshot { dirs }
    }

    /// Holds an Active key: consumers of `current/` can serve.
    pub fn has_current(&self) -> bool {
        self.dirs.get("current").is_some_and(|f| !f.is_empty())
    }

    pub fn len(&self) -> usize {
        self.dirs.values().map(BTreeMap::len).sum()
    }

    fn summary(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (dir, files) in &self.dirs {
            out.insert(
                (*dir).to_owned(),
                files.keys().cloned().collect::<Vec<_>>().into(),
            );
        }
        Value::Object(out)
    }
}

pub struct OutDir {
    root: PathBuf,
    /// What is on disk, so unchanged files are not rewritten every round.
    written: Snapshot,
    cluster_json: String,
}

impl OutDir {
    /// Creates the layout. Files an earlier run left are removed at the first write (they are
    /// not known to be this cluster's current set).
    pub fn create(root: &Path) -> anyhow::Result<OutDir> {
        ensure_dir(root, "--out-dir")?;
        for dir in DIRS {
            ensure_dir(&root.join(dir), "--out-dir")?;
        }
        Ok(OutDir {
            root: root.to_path_buf(),
            written: Snapshot {
                dirs: BTreeMap::new(),
            },
            cluster_json: String::new(),
        })
    }

    pub fn write(&mut self, snapshot: &Snapshot, cluster: &Value) -> anyhow::Result<()> {
        if *snapshot != self.written {
            self.write_keys(snapshot)?;
            self.written = snapshot.clone();
        }
        let mut doc = cluster.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("keys".into(), snapshot.summary());
        }
        let mut text = serde_json::to_string_pretty(&doc)?;
        text.push('\n');
        if text != self.cluster_json {
            write_atomic(&self.root.join("cluster.json"), text.as_bytes(), 0o644)?;
            self.cluster_json = text;
        }
        Ok(())
    }

    fn write_keys(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        // New and changed files first, everywhere; removals after: a key moving from next/ to
        // current/ is never absent from both.
        for (dir, files) in &snapshot.dirs {
            let path = self.root.join(dir);
            let before = self.written.dirs.get(dir);
            for (public_key, (pem, meta)) in files {
                let unchanged = before
                    .and_then(|b| b.get(public_key))
                    .is_some_and(|(p, m)| p == pem && m == meta);
                if unchanged {
                    continue;
                }
                write_atomic(
                    &path.join(format!("{public_key}.meta.json")),
                    meta.as_bytes(),
                    0o644,
                )?;
                write_atomic(
                    &path.join(format!("{public_key}.key")),
                    pem.as_bytes(),
                    0o600,
                )?;
            }
        }
        for (dir, files) in &snapshot.dirs {
            let path = self.root.join(dir);
            remove_others(&path, files)?;
        }
        Ok(())
    }
}

/// Removes every key file in `dir` that `keep` does not name (including ones an earlier run
/// left), the `.key` before its `.meta.json`; leftovers of interrupted writes (`.*.tmp-*`) too.
fn remove_others(dir: &Path, keep: &BTreeMap<String, (String, String)>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut metas = Vec::new();
    let mut removed = false;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name
            .strip_suffix(".meta.json")
            .map(|s| (s, true))
            .or_else(|| name.strip_suffix(".key").map(|s| (s, false)));
        let stale = match stem {
            Some((stem, _)) => !keep.contains_key(stem),
            None => name.starts_with('.') && name.contains(".tmp-"),
        };
        if !stale {
            continue;
        }
        if matches!(stem, Some((_, true))) {
            metas.push(entry.path());
            continue;
        }
        remove(&entry.path())?;
        removed = true;
    }
    for meta in metas {
        remove(&meta)?;
        removed = true;
    }
    if removed {
        sync_dir(dir);
    }
    Ok(())
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tng_ohttp::keys::ServerKey;

    fn entry(status: KeyStatus, id: u8) -> KeyEntry {
        let now = SystemTime::now();
        KeyEntry {
            key: Arc::new(ServerKey::generate(id)),
            status,
            activated_at: now,
            stale_at: now + Duration::from_secs(5),
            expire_at: now + Duration::from_secs(10),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_rotation_moves_files_and_removes_stale_ones() {
        let root = std::env::temp_dir().join(format!("tng-keysync-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("current")).unwrap();
        std::fs::write(root.join("current/leftover.key"), "old run").unwrap();
        let mut out = OutDir::create(&root).unwrap();
        let a = entry(KeyStatus::Active, 0);
        let b = entry(KeyStatus::Pending, 1);
        let (ha, hb) = (
            hex::encode(a.key.public_key()),
            hex::encode(b.key.public_key()),
        );
        let snap = Snapshot::new(&[a.clone(), b.clone()], Some(*a.key.public_key()));
        out.write(&snap, &json!({"node_id": "n"})).unwrap();
        assert_eq!(
            names(&root.join("current")),
            [format!("{ha}.key"), format!("{ha}.meta.json")]
        );
        assert_eq!(
            names(&root.join("next")),
            [format!("{hb}.key"), format!("{hb}.meta.json")]
        );
        let pem = std::fs::read_to_string(root.join(format!("current/{ha}.key"))).unwrap();
        let loaded = ServerKey::from_pkcs8_pem(&pem, 0).unwrap();
        assert_eq!(loaded.public_key(), a.key.public_key());

        // Hand-over: b Active, a Stale.
        let a2 = KeyEntry {
            status: KeyStatus::Stale,
            ..a
        };
        let b2 = KeyEntry {
            status: KeyStatus::Active,
            ..b
        };
        let snap = Snapshot::new(&[a2, b2.clone()], Some(*b2.key.public_key()));
        out.write(&snap, &json!({"node_id": "n"})).unwrap();
        assert_eq!(
            names(&root.join("current")),
            [format!("{hb}.key"), format!("{hb}.meta.json")]
        );
        assert!(names(&root.join("next")).is_empty());
        assert_eq!(
            names(&root.join("expired")),
            [format!("{ha}.key"), format!("{ha}.meta.json")]
        );
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(format!("current/{hb}.meta.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["advertised"], true);
        assert_eq!(meta["status"], "Active");
        let cluster: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("cluster.json")).unwrap())
                .unwrap();
        assert_eq!(cluster["keys"]["current"][0], hb);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
