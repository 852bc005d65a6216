//! The official upstream TNG binaries as peers (`target/upstream/<version>/tng`, fetched by
//! `scripts/fetch-upstream.sh`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::paths::{test_dir, workspace_root};
use crate::proc::Proc;

/// `target/upstream/<version>/tng` (or `$TNG_UPSTREAM_DIR/<version>/tng`). Missing: a panic
/// under `CI=true` (interop must never be skipped silently there), else a loud notice and
/// `None`.
pub fn upstream_bin(version: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TNG_UPSTREAM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("upstream"));
    let path = dir.join(version).join("tng");
    if path.is_file() {
        return Some(path);
    }
    let msg = format!(
        "upstream TNG {version} not found at {}: run scripts/fetch-upstream.sh",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: interop tests must not be skipped)");
    }
    let banner = "!".repeat(78);
    let text = format!("\n{banner}\n!!! SKIPPING INTEROP: {msg}\n{banner}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    None
}

/// Starts upstream `tng launch` with `config` (written to its own test directory, which is
/// also its working directory), `RUST_LOG=info`, without waiting for anything.
pub fn spawn_upstream(bin: &Path, name: &str, config: &Value) -> Proc {
    let dir = test_dir(name);
    let config_path = dir.join("config.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(config).expect("json"),
    )
    .expect("write upstream config");
    println!("[e2e] {name}: upstream config {}", config_path.display());
    let mut cmd = Command::new(bin);
    cmd.arg("launch")
        .arg("--config-file")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .current_dir(&dir);
    Proc::spawn(name, cmd, &dir)
}

/// Launches upstream `tng launch` with `config` and waits (20 s) for `port` to accept.
pub fn launch_upstream(bin: &Path, name: &str, config: &Value, port: u16) -> Proc {
    let mut proc = spawn_upstream(bin, name, config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = proc.try_wait() {
            panic!("{name} exited ({status}); log:\n{}", proc.log_tail(40));
        }
        assert!(
            Instant::now() < deadline,
            "{name}: port {port} not accepting within 20 s; log:\n{}",
            proc.log_tail(40)
        );
        crate::pause(Duration::from_millis(50));
    }
    proc
}
