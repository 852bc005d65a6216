//! Where binaries and per-test scratch directories live.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace root, found from this crate's manifest dir (`crates/tng-e2e/../..`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|p| p.parent())
        .expect("tng-e2e lives at <workspace>/crates/tng-e2e")
        .to_path_buf()
}

/// `target/debug/<name>` of this workspace (or of `$CARGO_TARGET_DIR`).
///
/// Panics when the binary is missing: tests deliberately never build binaries themselves,
/// because several test binaries running cargo at once would fight over the target lock.
pub fn bin(name: &str) -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    };
    let path = target.join("debug").join(name);
    if !path.is_file() {
        panic!(
            "{} not found: run `cargo build --workspace --bins` first",
            path.display()
        );
    }
    path
}

/// A fresh, unique directory `$TMPDIR/tng-e2e/<label>-<pid>-<n>-<nanos>`.
///
/// Directories are kept after the test so logs can be inspected; tests that create large
/// files remove those files themselves.
pub fn test_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = std::env::temp_dir()
        .join("tng-e2e")
        .join(format!("{safe}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
