//! `tng tools key-sync` on loopback: three `peer_shared` egress nodes (127.0.0.11–13, one
//! cluster port, mutually attested key channel through the sample stack), a receive-only
//! key-sync member (127.0.0.14) writing the keys, and an egress whose `key.source: file`
//! points at key-sync's `current/`, reached by our ingress.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tng_e2e::*;

use crate::run::tool;
use crate::stack::{Aa, As};

const ROTATION_SECS: u64 = 5;
const NODE_IPS: [&str; 3] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
const SYNC_IP: &str = "127.0.0.14";

fn node_config(i: usize, port: u16, aa: &Aa, service: &As, backend: &Backend) -> Value {
    // Node 0 starts alone (creates the first key); the others join it.
    let peers: Vec<String> = if i == 0 {
        Vec::new()
    } else {
        vec![format!("{}:{port}", NODE_IPS[0])]
    };
    json!({"add_egress": [{
        "mapping": {"in": {"host": "127.0.0.1", "port": free_port()},
                    "out": {"host": "127.0.0.1", "port": backend.port()}},
        "ohttp": {"key": {
            "source": "peer_shared",
            "rotation_interval": ROTATION_SECS,
            "host": NODE_IPS[i],
            "port": port,
            "peers": peers,
            "attest": {"aa_addr": aa.addr()},
            "verify": {"as_addr": service.url(), "policy_ids": ["default"]},
        }},
        "no_ra": true,
    }]})
}

/// The cluster's advertised key as node `node` reports it.
fn cluster_advertised(node: &Tng) -> Option<String> {
    let status = node.status_json("/status/egress/0/ohttp/keys");
    status["cluster"]["advertised"].as_str().map(str::to_owned)
}

/// The key an egress advertises, read with `tng tools ohttp dump --json`.
fn dumped_key(port: u16) -> String {
    let doc = tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &format!("http://127.0.0.1:{port}/"),
        "--json",
    ])
    .success()
    .json();
    doc["keys"][0]["public_key"]
        .as_str()
        .expect("public_key")
        .to_owned()
}

/// `<hex>.key` / `<hex>.meta.json` names of one output directory, checked for consistency:
/// every key parses as an X25519 PKCS#8 key whose public key is its name, every key has its
/// metadata, no temporary file is visible.
fn check_dir(dir: &Path, status: &str) -> Result<BTreeSet<String>, String> {
    let mut keys = BTreeSet::new();
    let mut metas = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let name = entry
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".meta.json") {
            metas.insert(stem.to_owned());
        } else if let Some(stem) = name.strip_suffix(".key") {
            keys.insert(stem.to_owned());
        } else if name.contains(".tmp-") {
            // A writer's temporary file is allowed to exist for an instant; never under a
            // final name.
        } else {
            return Err(format!("unexpected file {name} in {}", dir.display()));
        }
    }
    for stem in &keys {
        let pem = match std::fs::read_to_string(dir.join(format!("{stem}.key"))) {
            Ok(pem) => pem,
            // Moved away between the listing and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.to_string()),
        };
        let public = tng_ohttp::keys::ServerKey::from_pkcs8_pem(&pem, 0)
            .map(|k| hex::encode(k.public_key()))
            .map_err(|e| {
                format!(
                    "{}/{stem}.key is not a whole PKCS#8 key: {e}: {pem:?}",
                    dir.display()
                )
            })?;
        if public != *stem {
            return Err(format!(
                "{}/{stem}.key holds the key {public}",
                dir.display()
            ));
        }
        if !metas.contains(stem) && dir.join(format!("{stem}.key")).exists() {
            return Err(format!("{}/{stem}.key has no .meta.json", dir.display()));
        }
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("{stem}.meta.json"))) {
            let meta: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}/{stem}.meta.json: {e}: {text:?}", dir.display()))?;
            if meta["status"] != status || meta["public_key"] != *stem {
                return Err(format!("{}/{stem}.meta.json: {meta}", dir.display()));
            }
        }
    }
    Ok(keys)
}

struct KeySync {
    proc: Proc,
    out: PathBuf,
    ready: PathBuf,
}

fn start_key_sync(port: u16, aa: &Aa, service: &As) -> KeySync {
    let dir = test_dir("key-sync");
    let out = dir.join("keys");
    let ready = dir.join("ready");
    let mut cmd = Command::new(bin("tng"));
    cmd.args([
        "--log-file",
        dir.join("key-sync.log").to_str().unwrap(),
        "tools",
        "key-sync",
        "--host",
        SYNC_IP,
        "--port",
        &port.to_string(),
        "--rotation-interval",
        &ROTATION_SECS.to_string(),
    ]);
    for ip in NODE_IPS {
        cmd.args(["--peer", &format!("{ip}:{port}")]);
    }
    cmd.arg("--attest")
        .arg(json!({"aa_addr": aa.addr()}).to_string())
        .arg("--verify")
        .arg(json!({"as_addr": service.url(), "policy_ids": ["default"]}).to_string())
        .arg("--out-dir")
        .arg(&out)
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "info,tng_cluster=debug");
    let proc = Proc::spawn("key-sync", cmd, &dir);
    KeySync { proc, out, ready }
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        pause(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn key_sync_feeds_a_file_egress_through_rotations_with_zero_failures() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let backend = Backend::start();
    let port = free_port();
    let nodes: Vec<Tng> = (0..3)
        .map(|i| {
            Tng::launch_named(
                &format!("node{}", i + 1),
                node_config(i, port, &aa, &service, &backend),
            )
        })
        .collect();
    let mut sync = start_key_sync(port, &aa, &service);
    let ready_after = wait_for("key-sync ready file", Duration::from_secs(45), || {
        sync.ready.exists()
    });
    println!("[e2e] key-sync ready after {ready_after:?}");
    assert!(
        sync.proc.try_wait().is_none(),
        "key-sync exited:\n{}",
        sync.proc.log_tail(40)
    );
    let current = sync.out.join("current");
    let keys = check_dir(&current, "Active").unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let cluster = serde_json::from_str::<Value>(
        &std::fs::read_to_string(sync.out.join("cluster.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cluster["keys"]["current"][0].as_str(),
        keys.iter().next().map(String::as_str),
        "{cluster}"
    );
    assert_eq!(cluster["ready"], true, "{cluster}");

    // The key-sync member never leads and holds no keys for others.
    for node in &nodes {
        let status = node.status_json("/status/egress/0/ohttp/keys");
        let members = status["cluster"]["members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let receiver = members
            .iter()
            .find(|m| m["node_id"] == format!("{SYNC_IP}:{port}"));
        assert!(
            receiver.is_some_and(|m| m["receive_only"] == true && m["ready"] == false),
            "{status}"
        );
        assert_ne!(
            status["cluster"]["leader"],
            format!("{SYNC_IP}:{port}"),
            "{status}"
        );
    }

    // The file egress, and our ingress in front of it.
    let (file_egress, file_port) = launch_egress(
        backend.addr(),
        json!({"ohttp": {"key": {"source": "file", "path": current.display().to_string()}}}),
    );
    let (_ingress, ingress_port) = launch_ingress(&format!("127.0.0.1:{file_port}"), json!({}));
    let url = format!("http://127.0.0.1:{ingress_port}/echo");

    // Three rotations under sequential load; meanwhile the directory is checked and the keys
    // the file egress and the cluster advertise are recorded.
    let mut failures = Vec::new();
    let mut requests = 0u32;
    let mut file_keys: BTreeMap<String, Instant> = BTreeMap::new();
    let mut cluster_keys: BTreeMap<String, Instant> = BTreeMap::new();
    let mut seen_next = false;
    let mut seen_expired = false;
    let mut dir_errors = Vec::new();
    let end = Instant::now() + Duration::from_secs(3 * ROTATION_SECS + 2);
    let mut i = 0u64;
    while Instant::now() < end {
        let body = format!("request {i}");
        i += 1;
        requests += 1;
        let resp = curl_status(&["--max-time", "5", "--data-binary", &body, &url]);
        if resp.status != 200 || resp.body != body.as_bytes() {
            failures.push(format!("{body}: {} {}", resp.status, resp.text()));
        }
        if i.is_multiple_of(5) {
            file_keys
                .entry(dumped_key(file_port))
                .or_insert_with(Instant::now);
            if let Some(k) = cluster_advertised(&nodes[0]) {
                cluster_keys.entry(k).or_insert_with(Instant::now);
            }
            for (dir, status) in [
                ("current", "Active"),
                ("next", "Pending"),
                ("expired", "Stale"),
            ] {
                match check_dir(&sync.out.join(dir), status) {
                    Ok(keys) => {
                        seen_next |= dir == "next" && !keys.is_empty();
                        seen_expired |= dir == "expired" && !keys.is_empty();
                    }
                    Err(e) => dir_errors.push(e),
                }
            }
        }
    }
    println!(
        "[e2e] {requests} requests, {} failed; file egress keys {:?}; cluster keys {:?}",
        failures.len(),
        file_keys.keys().collect::<Vec<_>>(),
        cluster_keys.keys().collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} failed: {failures:?}\nfile egress:\n{}\nkey-sync:\n{}",
        failures.len(),
        file_egress.log_tail(30),
        sync.proc.log_tail(30)
    );
    assert!(dir_errors.is_empty(), "{dir_errors:?}");
    assert!(seen_next, "the successor key was never in next/");
    assert!(seen_expired, "the previous key was never in expired/");
    assert!(
        file_keys.len() >= 3,
        "at least two rotations seen by the file egress: {file_keys:?}"
    );
    // Every key the file egress advertised is a key the cluster advertised (the first and the
    // last may have been sampled on only one side).
    let file_set: BTreeSet<&String> = file_keys.keys().collect();
    let cluster_set: BTreeSet<&String> = cluster_keys.keys().collect();
    let common = file_set.intersection(&cluster_set).count();
    assert!(
        common + 2 >= file_set.len().max(cluster_set.len()) && common >= 2,
        "file egress {file_set:?} vs cluster {cluster_set:?}"
    );
    for key in file_set.difference(&cluster_set) {
        // A key only the file egress was seen with must still be one the cluster created:
        // some node holds it.
        let held = nodes.iter().any(|n| n.egress_public_keys(0).contains(key));
        assert!(
            held || file_keys[*key] > end - Duration::from_secs(2),
            "{key} unknown to the cluster"
        );
    }
    // Nothing the cluster dropped stays in key-sync's directories.
    pause(Duration::from_secs(1));
    let held: BTreeSet<String> = nodes[0].egress_public_keys(0).into_iter().collect();
    let mut written = BTreeSet::new();
    for dir in ["current", "next", "expired"] {
        written.extend(
            check_dir(
                &sync.out.join(dir),
                match dir {
                    "current" => "Active",
                    "next" => "Pending",
                    _ => "Stale",
                },
            )
            .unwrap(),
        );
    }
    assert!(
        written.is_subset(&held) || held.is_subset(&written),
        "written {written:?} vs held {held:?}"
    );
    let status = sync.proc.terminate();
    assert!(status.success(), "key-sync exit on SIGTERM: {status}");
}
