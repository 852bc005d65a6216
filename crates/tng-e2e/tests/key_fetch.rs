//! How the ingress gets egress keys: every fetch has a deadline, one fetch (and one
//! attestation) answers every request waiting for it, and keys are cached per egress, not per
//! rewritten path.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tng_e2e::*;

/// Accepts connections and reads from them, never answering.
struct Hanging {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        Hanging { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// `n` concurrent requests to `url`; each returns (status, code, elapsed).
fn concurrent(url: &str, n: usize) -> Vec<(u16, String, Duration)> {
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let r = curl_status(&["--max-time", "30", &url]);
                let code = if r.status == 0 {
                    String::new()
                } else {
                    r.json()["code"].as_str().unwrap_or_default().to_string()
                };
                (r.status, code, start.elapsed())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect()
}

fn ingress_to(port: u16, extra: Value) -> (Tng, u16) {
    let listen = free_port();
    let mut entry = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": listen},
                    "out": {"host": "127.0.0.1", "port": port}},
        "ohttp": {},
        "limits": {"response_timeout": 2}
    });
    tng::merge(&mut entry, &extra);
    (
        Tng::launch_named("ingress", json!({"add_ingress": [entry]})),
        listen,
    )
}

#[test]
fn a_hanging_egress_gets_every_waiting_request_a_504_at_the_deadline() {
    let egress = Hanging::start();
    let (ingress, port) = ingress_to(egress.port, json!({"no_ra": true}));
    let results = concurrent(&format!("http://127.0.0.1:{port}/x"), 6);
    println!("[key_fetch] hanging egress: {results:?}");
    for (status, code, took) in &results {
        assert_eq!(
            (*status, code.as_str()),
            (504, "KeyConfigTimeout"),
            "{results:?}"
        );
        // One deadline for all of them, not one each.
        assert!(*took < Duration::from_secs(5), "{results:?}");
    }
    assert_eq!(egress.connections(), 1, "one fetch for all waiters");
    ingress.wait_for_log("KeyConfigTimeout", Duration::from_secs(5));
}

#[test]
fn a_hanging_attestation_service_costs_one_attempt_for_all_waiters() {
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(backend.addr(), json!({}));
    let service = Hanging::start();
    let (ingress, port) = ingress_to(
        egress_port,
        json!({"verify": {
            "as_addr": format!("http://127.0.0.1:{}", service.port),
            "policy_ids": ["default"],
            "skip_as_token_cert_verify": true}}),
    );
    let url = format!("http://127.0.0.1:{port}/x");
    let results = concurrent(&url, 6);
    println!("[key_fetch] hanging AS: {results:?}");
    for (status, code, took) in &results {
        assert_eq!(
            (*status, code.as_str()),
            (504, "KeyConfigTimeout"),
            "{results:?}"
        );
        assert!(*took < Duration::from_secs(5), "{results:?}");
    }
    assert_eq!(service.connections(), 1, "one AS attempt for all waiters");
    // Right after a failure the next request is answered from the failure, at once.
    let start = Instant::now();
    let r = curl_status(&["--max-time", "30", &url]);
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["code"], "KeyConfigTimeout");
    println!("[key_fetch] next request: 504 in {} ms", took.as_millis());
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(service.connections() <= 2, "{}", service.connections());
    drop((egress, ingress));
}

#[test]
fn path_rewrites_share_one_key_fetch_per_egress() {
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(backend.addr(), json!({}));
    let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
    let (ingress, port) = launch_ingress(
        &format!("127.0.0.1:{}", relay.port()),
        json!({"ohttp": {"path_rewrites": [
            {"match_regex": "^/p/([^/]+).*$", "substitution": "/p/$1"}
        ]}}),
    );
    let paths = 300;
    for i in 0..paths {
        let r = curl_status(&[&format!("http://127.0.0.1:{port}/p/{i}/x")]);
        assert_eq!(r.status, 200, "path {i}: {}", r.text());
    }
    let requests = split_requests(&relay.upstream());
    let fetches = requests
        .iter()
        .filter(|m| m.header("x-tng-ohttp-api").as_deref() == Some("/tng/key-config"))
        .count();
    let tunnels = requests
        .iter()
        .filter(|m| m.header("x-tng-ohttp-api").as_deref() == Some("/tng/tunnel"))
        .count();
    println!("[key_fetch] {paths} rewritten paths: {fetches} key-config fetch(es), {tunnels} tunnel requests");
    assert_eq!(tunnels, paths);
    assert_eq!(fetches, 1);
    let status = ingress.status_json("/status/ingress/0/ohttp/keys");
    let servers = status["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1, "{status}");
    assert_eq!(
        servers[0]["url"],
        format!("http://127.0.0.1:{}/", relay.port())
    );
    assert_eq!(servers[0]["keys"].as_array().map(Vec::len), Some(1));
    drop(egress);
}
