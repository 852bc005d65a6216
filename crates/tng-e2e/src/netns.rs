//! Commands and clean-up shared by the tests that build network namespaces.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pause;

/// Runs a command to completion; panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program} {args:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command quietly; whether it succeeded.
pub fn try_run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pids of the processes running in namespace `ns`.
pub fn namespace_pids(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills whatever still runs in the namespaces, waits (up to 5 s) for the kernel to reap it so
/// the namespaces go away entirely, then deletes them. For `Drop` impls: never panics.
pub fn remove_namespaces(namespaces: &[&str]) {
    for ns in namespaces {
        for pid in namespace_pids(ns) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while namespaces.iter().any(|ns| !namespace_pids(ns).is_empty()) && Instant::now() < deadline {
        pause(Duration::from_millis(20));
    }
    for ns in namespaces {
        let _ = try_run("ip", &["netns", "del", ns]);
    }
}
