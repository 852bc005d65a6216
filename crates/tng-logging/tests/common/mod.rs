//! Shared by the integration tests: real files in a fresh directory, the layer installed for
//! the calling thread only, and readers for what the writer threads wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use tng_logging::{LogArgs, LogGuard};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
}

/// A fresh directory under `$TMPDIR/tng-logging-tests/`.
pub fn dir(label: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join("tng-logging-tests").join(format!(
        "{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn args(argv: &[&str]) -> LogArgs {
    Cli::try_parse_from(std::iter::once("tng").chain(argv.iter().copied()))
        .expect("flags parse")
        .log
}

/// Builds logging from `argv` and `env` (the process environment is not read), logs the
/// start-up warnings and runs `f` with it as this thread's subscriber. Flushes before
/// returning the guard.
pub fn run(argv: &[&str], env: &[(&str, &str)], f: impl FnOnce()) -> LogGuard {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let logging =
        tng_logging::build::<tracing_subscriber::Registry>(&args(argv), &lookup).expect("build");
    let subscriber = tracing_subscriber::registry().with(logging.layer);
    tracing::subscriber::with_default(subscriber, || {
        for warning in &logging.warnings {
            tracing::warn!(target: "tng::logging", "{warning}");
        }
        f();
    });
    assert!(
        logging.guard.flush(Duration::from_secs(60)),
        "flush timed out"
    );
    logging.guard
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()))
        })
        .collect()
}

/// A tmpfs of `size` bytes mounted at `path`, unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount tmpfs at {} failed (tests run as root)",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
