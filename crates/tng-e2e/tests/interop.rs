//! Interop with the official upstream TNG binaries (PyPI `tng-sdk` 2.12.0, 2.9.0 and 2.7.3,
//! fetched into `target/upstream/<version>/tng` by `scripts/fetch-upstream.sh`).
//!
//! For each version, in both directions — upstream ingress → our egress, our ingress →
//! upstream egress — with a `tng-devkit` backend and a recording TCP relay on the outer leg:
//! GET with exact bodies, multi-MiB POST bodies (Content-Length and chunked), an 8 MiB
//! chunked streamed response checked byte by byte, `path_rewrites` proven on the wire, and
//! key rotation (`rotation_interval: 2`) under ~10 s of continuous requests with zero failures,
//! and the AEAD on the wire: the first one the egress offers.
//! Upstream ↔ upstream runs as a control: it proves that these configs, waits and checks are
//! right, so a failure in a mixed pair points at our side.
//!
//! Missing upstream binaries: with `CI=true` the tests panic (never a silent skip), otherwise
//! they print a loud notice and return.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tng_e2e::net::find;
use tng_e2e::proc::tail;
use tng_e2e::*;

/// The outer-path rule used by every ingress here: `/foo/<seg>/<rest>` → `POST /foo/<seg>`.
fn path_rewrites() -> Value {
    json!([{"match_regex": "^/foo/([^/]+)([/]?.*)$", "substitution": "/foo/$1"}])
}

/// Key lifetime of the egress in the ordinary tests (upstream's default).
const NORMAL_ROTATION: u64 = 300;
/// Key lifetime in the rotation tests: a new key every 2 s, each accepted for 4 s.
const FAST_ROTATION: u64 = 2;
/// How long the rotation tests keep sending requests.
const ROTATION_RUN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Upstream binaries and processes

use tng_e2e::upstream::upstream_bin;

/// A running upstream `tng launch` (logs go to stdout, captured in its `Proc` log).
struct UpstreamTng {
    proc: Proc,
}

impl UpstreamTng {
    /// Writes `config` to a file, launches upstream with `RUST_LOG=info` in its own directory
    /// and waits (20 s) until `listen_port` accepts TCP connections.
    fn launch(bin: &PathBuf, name: &str, config: &Value, listen_port: u16) -> UpstreamTng {
        let dir = test_dir(name);
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap())
            .expect("write upstream config");
        let mut cmd = Command::new(bin);
        cmd.arg("launch")
            .arg("--config-file")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .current_dir(&dir);
        println!("[interop] {name}: config {}", config_path.display());
        let mut proc = Proc::spawn(name, cmd, &dir);
        // Upstream has a control interface too, but a TCP accept on the service port is the
        // one readiness signal every upstream version gives without extra configuration.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", listen_port)).is_ok() {
                break;
            }
            if let Some(status) = proc.try_wait() {
                panic!(
                    "{name} exited ({status}) before listening; log:\n{}",
                    proc.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{name}: port {listen_port} not accepting within 20 s; log:\n{}",
                    proc.log_tail(40)
                );
            }
            pause(Duration::from_millis(50));
        }
        UpstreamTng { proc }
    }
}

/// Who implements one side of the tunnel.
#[derive(Clone, Copy, Debug)]
enum Peer {
    Ours,
    Upstream(&'static str),
}

impl Peer {
    fn label(self) -> String {
        match self {
            Peer::Ours => "ours".to_string(),
            Peer::Upstream(v) => format!("upstream-{v}"),
        }
    }
}

/// A running ingress or egress of either implementation.
enum Node {
    Ours(Tng),
    Upstream(UpstreamTng),
}

impl Node {
    /// Launches `config` (one `add_ingress` or `add_egress` entry) listening on `listen_port`.
    fn launch(peer: Peer, bins: &Bins, name: &str, config: Value, listen_port: u16) -> Node {
        match peer {
            // The harness adds a control interface and waits for /readyz.
            Peer::Ours => Node::Ours(Tng::launch_named(name, config)),
            Peer::Upstream(v) => {
                Node::Upstream(UpstreamTng::launch(bins.get(v), name, &config, listen_port))
            }
        }
    }

    fn log(&self) -> String {
        match self {
            Node::Ours(t) => t.log(),
            Node::Upstream(u) => u.proc.log(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Node::Ours(t) => t.proc.pid(),
            Node::Upstream(u) => u.proc.pid(),
        }
    }

    fn peak_rss_kib(&self) -> u64 {
        match self {
            Node::Ours(t) => t.peak_rss_kib(),
            Node::Upstream(u) => u.proc.peak_rss_kib(),
        }
    }
}

/// The upstream binaries a topology needs, resolved once.
struct Bins(Vec<(&'static str, PathBuf)>);

impl Bins {
    /// `None` when a needed binary is missing outside CI (the test then returns early).
    fn resolve(peers: &[Peer]) -> Option<Bins> {
        let mut bins = Vec::new();
        for peer in peers {
            if let Peer::Upstream(v) = *peer {
                bins.push((v, upstream_bin(v)?));
            }
        }
        Some(Bins(bins))
    }

    fn get(&self, version: &str) -> &PathBuf {
        &self
            .0
            .iter()
            .find(|(v, _)| *v == version)
            .expect("resolved")
            .1
    }
}

// ---------------------------------------------------------------------------------------------
// Topology: client → ingress → relay → egress → backend

fn egress_config(port: u16, backend_port: u16, rotation: u64) -> Value {
    json!({"add_egress": [{
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": "127.0.0.1", "port": backend_port}},
        // Upstream 2.9.0 requires rotation_interval whenever `key` is written.
        "ohttp": {"key": {"source": "self_generated", "rotation_interval": rotation}},
        "no_ra": true
    }]})
}

fn ingress_config(port: u16, out_port: u16) -> Value {
    json!({"add_ingress": [{
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": "127.0.0.1", "port": out_port}},
        "ohttp": {"path_rewrites": path_rewrites()},
        "no_ra": true
    }]})
}

struct Topo {
    name: String,
    egress_peer: Peer,
    backend: Backend,
    egress: Node,
    relay: Relay,
    ingress: Node,
    ingress_port: u16,
}

impl Topo {
    /// Starts backend, egress, relay and ingress; `None` if an upstream binary is missing
    /// outside CI.
    fn start(ingress: Peer, egress: Peer, rotation: u64) -> Option<Topo> {
        let bins = Bins::resolve(&[ingress, egress])?;
        let name = format!("{} ingress -> {} egress", ingress.label(), egress.label());
        println!("[interop] topology: {name} (rotation_interval {rotation})");
        let backend = Backend::start();
        let egress_port = free_port();
        let egress_node = Node::launch(
            egress,
            &bins,
            &format!("{}-egress", egress.label()),
            egress_config(egress_port, backend.port(), rotation),
            egress_port,
        );
        // The relay records the outer leg exactly as an L7 gateway would see it.
        let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
        let ingress_port = free_port();
        let ingress_node = Node::launch(
            ingress,
            &bins,
            &format!("{}-ingress", ingress.label()),
            ingress_config(ingress_port, relay.port()),
            ingress_port,
        );
        Some(Topo {
            name,
            egress_peer: egress,
            backend,
            egress: egress_node,
            relay,
            ingress: ingress_node,
            ingress_port,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ingress_port, path)
    }

    /// Log tails of both tng processes, for assertion messages.
    fn logs(&self) -> String {
        format!(
            "--- ingress log (tail) ---\n{}\n--- egress log (tail) ---\n{}",
            tail(&self.ingress.log(), 30),
            tail(&self.egress.log(), 30)
        )
    }

    fn report_rss(&self) {
        println!(
            "[interop] {}: peak RSS ingress (pid {}) {} KiB, egress (pid {}) {} KiB",
            self.name,
            self.ingress.pid(),
            self.ingress.peak_rss_kib(),
            self.egress.pid(),
            self.egress.peak_rss_kib()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Deterministic, incompressible-looking bytes (xorshift64), covering every byte value.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The HTTP/1.1 requests the ingress sent on the outer leg since the last `relay.clear()`.
/// Only valid while requests are sequential (the relay concatenates all connections).
fn outer_requests(t: &Topo) -> Vec<CapturedMessage> {
    split_requests(&t.relay.upstream())
}

/// The AEAD id in a tunnel request's OHTTP header, which follows the metadata frame
/// (`u32 length ‖ metadata`) and `key_id ‖ kem_id ‖ kdf_id`.
fn tunnel_aead(body: &[u8]) -> u16 {
    let meta_len = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
    let at = 4 + meta_len + 5;
    u16::from_be_bytes([body[at], body[at + 1]])
}

fn request_line(m: &CapturedMessage) -> &str {
    m.head.split("\r\n").next().unwrap_or_default()
}

/// GET through the tunnel with an exact body, and the outer path chosen by `path_rewrites`.
fn check_get_and_path_rewrite(t: &Topo) {
    // First request of the topology: the outer leg carries the key-config fetch and the
    // tunnel request, both to the rewritten path; query and inner path stay encrypted.
    t.relay.clear();
    let r = curl_status(&[&t.url("/foo/bar/baz?secret=q1")]);
    assert_eq!(
        r.status,
        200,
        "{}: GET /foo/bar/baz: {}\n{}",
        t.name,
        r.text(),
        t.logs()
    );
    assert_eq!(
        r.text(),
        "hello from backend: GET /foo/bar/baz",
        "{}",
        t.name
    );
    let reqs = outer_requests(t);
    let lines: Vec<&str> = reqs.iter().map(request_line).collect();
    println!(
        "[interop] {}: outer requests for /foo/bar/baz: {lines:?}",
        t.name
    );
    assert!(!reqs.is_empty(), "{}: relay saw no outer request", t.name);
    for m in &reqs {
        assert_eq!(
            request_line(m),
            "POST /foo/bar HTTP/1.1",
            "{}: outer head {:?}",
            t.name,
            m.head
        );
    }
    let tunnel: Vec<&CapturedMessage> = reqs
        .iter()
        .filter(|m| m.header("x-tng-ohttp-api").as_deref() == Some("/tng/tunnel"))
        .collect();
    assert_eq!(
        tunnel.len(),
        1,
        "{}: one tunnel request expected: {reqs:?}",
        t.name
    );
    assert_eq!(
        tunnel[0].header("content-type").as_deref(),
        Some("message/ohttp-chunked-req"),
        "{}",
        t.name
    );
    // An ingress seals with the first AEAD the egress's key config offers: AES-128-GCM for
    // ours and upstream 2.12, ChaCha20-Poly1305 for the older upstream releases.
    let expected_aead = match t.egress_peer {
        Peer::Ours | Peer::Upstream("2.12.0") => 0x0001,
        Peer::Upstream(_) => 0x0003,
    };
    assert_eq!(
        tunnel_aead(&tunnel[0].body),
        expected_aead,
        "{}: AEAD of the tunnel request",
        t.name
    );
    let up = t.relay.upstream();
    assert!(
        find(&up, b"secret=q1").is_none(),
        "{}: query leaked on the outer leg",
        t.name
    );
    assert!(
        find(&up, b"/foo/bar/baz").is_none(),
        "{}: inner path leaked",
        t.name
    );
    assert!(
        find(&t.relay.downstream(), b"hello from backend").is_none(),
        "{}: response plaintext on the outer leg",
        t.name
    );

    // A path the rule does not match goes to "/" (path_default root); the rule needs the
    // whole path to match, and `$1` is the first segment only.
    for (inner, outer) in [
        ("/echo?x=1", "/"),
        ("/foo/one", "/foo/one"),
        ("/foo/two/", "/foo/two"),
    ] {
        t.relay.clear();
        let r = curl_status(&[&t.url(inner)]);
        assert_eq!(
            r.status,
            200,
            "{}: GET {inner}: {}\n{}",
            t.name,
            r.text(),
            t.logs()
        );
        let reqs = outer_requests(t);
        assert!(!reqs.is_empty(), "{}: no outer request for {inner}", t.name);
        for m in &reqs {
            assert_eq!(
                request_line(m),
                format!("POST {outer} HTTP/1.1"),
                "{}: inner {inner}",
                t.name
            );
        }
    }

    // The inner request line (with query) and custom headers reach the backend intact.
    let r = curl_status(&["-H", "x-custom: v1", &t.url("/echo?q=1&r=%2F")]);
    assert_eq!(r.status, 200, "{}: {}", t.name, r.text());
    assert_eq!(r.header("x-echo-method"), Some("GET"), "{}", t.name);
    assert_eq!(
        r.header("x-echo-uri"),
        Some("/echo?q=1&r=%2F"),
        "{}",
        t.name
    );
    assert_eq!(r.header("x-echo-h-x-custom"), Some("v1"), "{}", t.name);
    assert!(
        r.body.is_empty(),
        "{}: GET /echo body {:?}",
        t.name,
        r.text()
    );

    // A backend status passes through as is.
    let r = curl_status(&[&t.url("/status?code=404")]);
    assert_eq!(r.status, 404, "{}: {}", t.name, r.text());
}

/// Multi-MiB request bodies, Content-Length and chunked, hashed by the backend.
fn check_post_sink(t: &Topo) {
    let dir = test_dir("interop-post");
    for (i, (len, chunked)) in [(4 << 20, false), ((3 << 20) + 7, true)]
        .into_iter()
        .enumerate()
    {
        let body = noise(0x9e37_79b9 + i as u64, len);
        let file = dir.join(format!("body{i}.bin"));
        std::fs::write(&file, &body).expect("write body");
        let at_file = format!("@{}", file.display());
        let mut args = vec!["-X", "POST", "--data-binary", &at_file];
        args.extend(["-H", "content-type: application/octet-stream"]);
        if chunked {
            args.extend(["-H", "transfer-encoding: chunked"]);
        }
        let url = t.url("/sink");
        args.push(&url);
        let r = curl_status(&args);
        assert_eq!(
            r.status,
            200,
            "{}: POST /sink ({len} B): {}\n{}",
            t.name,
            r.text(),
            t.logs()
        );
        let v = r.json();
        assert_eq!(v["bytes"].as_u64(), Some(len as u64), "{}: {v}", t.name);
        assert_eq!(
            v["sha256"].as_str(),
            Some(sha256_hex(&body).as_str()),
            "{}",
            t.name
        );
        let _ = std::fs::remove_file(&file);
        println!(
            "[interop] {}: POST /sink {len} B (chunked={chunked}) ok",
            t.name
        );
    }
}

/// An 8 MiB chunked response, verified against the backend's byte pattern.
///
/// When neither gateway is ours (the harness control), a truncated transfer is retried: the
/// 2.7.3 pair itself occasionally cuts an 8 MiB chunked stream short (curl exit 18, seen on
/// CI), which says nothing about the harness. A topology with one of our gateways gets one try.
fn check_streamed_download(t: &Topo, both_upstream: bool) {
    let n: u64 = 8 * 1024 * 1024;
    let url = t.url(&format!("/bytes?n={n}&te=chunked"));
    let attempts = if both_upstream { 3 } else { 1 };
    let mut r = None;
    for attempt in 1..=attempts {
        match try_curl_status(&[&url]) {
            Ok(ok) => {
                r = Some(ok);
                break;
            }
            Err(e) if attempt < attempts => {
                println!(
                    "[interop] {}: upstream pair truncated the stream, retrying: {e}",
                    t.name
                )
            }
            Err(e) => panic!("{}: {e}\n{}", t.name, t.logs()),
        }
    }
    let r = r.expect("a successful attempt");
    assert_eq!(
        r.status,
        200,
        "{}: /bytes: {}\n{}",
        t.name,
        r.text(),
        t.logs()
    );
    let mut check = PatternChecker::new();
    check.feed(&r.body);
    assert_eq!(check.len(), n, "{}: streamed body length", t.name);
    assert_eq!(check.first_mismatch(), None, "{}: pattern mismatch", t.name);
    assert_eq!(
        check.sha256(),
        pattern_sha256(n),
        "{}: streamed body sha256",
        t.name
    );
    println!("[interop] {}: streamed {n} B ok", t.name);
}

fn basic(ingress: Peer, egress: Peer) {
    let Some(t) = Topo::start(ingress, egress, NORMAL_ROTATION) else {
        return;
    };
    check_get_and_path_rewrite(&t);
    check_post_sink(&t);
    check_streamed_download(
        &t,
        !matches!(ingress, Peer::Ours) && !matches!(egress, Peer::Ours),
    );
    assert!(
        t.backend.requests() >= 8,
        "{}: backend saw too few requests",
        t.name
    );
    t.report_rss();
}

// ---------------------------------------------------------------------------------------------
// Key rotation

/// Distinct egress public keys seen over time: our egress via its control interface,
/// upstream via its "New OHTTP key generated" log lines.
fn egress_keys_seen(t: &Topo, sampled: &Mutex<Vec<String>>) -> usize {
    match &t.egress {
        Node::Ours(_) => sampled.lock().unwrap().len(),
        Node::Upstream(u) => u
            .proc
            .log()
            .lines()
            .filter(|l| l.contains("New OHTTP key generated"))
            .count(),
    }
}

fn rotation(ingress: Peer, egress: Peer) {
    let Some(t) = Topo::start(ingress, egress, FAST_ROTATION) else {
        return;
    };
    let t = Arc::new(t);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();

    // Two clients back to back: GETs with exact bodies and small POSTs echoed back, so both
    // an empty and a non-empty request body cross every key change.
    let mut workers = Vec::new();
    for w in 0..2u32 {
        let (t, stop, ok, failures) = (t.clone(), stop.clone(), ok.clone(), failures.clone());
        workers.push(thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let (args, expect): (Vec<String>, Vec<u8>) = if i.is_multiple_of(2) {
                    (
                        vec![t.url(&format!("/foo/w{w}/{i}"))],
                        format!("hello from backend: GET /foo/w{w}/{i}").into_bytes(),
                    )
                } else {
                    let body = format!("rotation body {w} {i}");
                    (
                        vec!["--data-binary".into(), body.clone(), t.url("/echo")],
                        body.into_bytes(),
                    )
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut cmd = vec!["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"];
                cmd.extend(args);
                let out = Command::new("curl").args(&cmd).output().expect("run curl");
                let mut body = out.stdout;
                let code_at = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
                let code = String::from_utf8_lossy(&body[code_at..]).trim().to_string();
                body.truncate(code_at);
                if code == "200" && body == expect {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.lock().unwrap().push(format!(
                        "worker {w} request {i}: status {code} body {:?} curl {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)]),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }));
    }
    // Our egress: sample the advertised/held keys to prove rotation really happened.
    let sampler = {
        let (t, stop, keys) = (t.clone(), stop.clone(), keys.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Node::Ours(egress) = &t.egress {
                    // Not `egress_public_keys`: a failed sample must not panic this thread;
                    // too few keys seen fails the test below, with the logs.
                    let url = format!("{}/status/egress/0/ohttp/keys", egress.control_url());
                    let (status, body) = http_get(&url);
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let listed = v["local_keys"].as_array().cloned().unwrap_or_default();
                    if status != 200 || listed.is_empty() {
                        println!("[interop] key status sample: {status} {body:?}");
                    }
                    let mut seen = keys.lock().unwrap();
                    for k in listed.iter().filter_map(|k| k["public_key"].as_str()) {
                        if !seen.iter().any(|s| s == k) {
                            seen.push(k.to_string());
                        }
                    }
                }
                pause(Duration::from_millis(300));
            }
        })
    };
    pause(ROTATION_RUN);
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    sampler.join().expect("sampler");

    let ok = ok.load(Ordering::SeqCst);
    let failures = failures.lock().unwrap().clone();
    let key_count = egress_keys_seen(&t, &keys);
    // The relay interleaves concurrent connections, so count header occurrences rather than
    // parsing messages: each key-config fetch carries this header once.
    let outer = t.relay.upstream().to_ascii_lowercase();
    let fetches = outer
        .windows(32)
        .filter(|w| w == b"x-tng-ohttp-api: /tng/key-config")
        .count();
    println!(
        "[interop] {} rotation_interval {FAST_ROTATION}s for {ROTATION_RUN:?}: ok={ok} failed={} \
         egress keys seen={key_count} key-config fetches={fetches}",
        t.name,
        failures.len()
    );
    for f in failures.iter().take(10) {
        println!("[interop]   failure: {f}");
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {} requests failed across key rotation; first: {:?}\n{}",
        t.name,
        failures.len(),
        ok as usize + failures.len(),
        failures.first(),
        t.logs()
    );
    assert!(
        ok >= 40,
        "{}: only {ok} requests in {ROTATION_RUN:?}",
        t.name
    );
    // 10 s at one key per 2 s: at least 4 keys must have existed.
    assert!(
        key_count >= 4,
        "{}: only {key_count} egress keys seen: no rotation?\n{}",
        t.name,
        t.logs()
    );
    assert!(
        fetches >= 2,
        "{}: ingress fetched the key config {fetches} time(s)",
        t.name
    );
    t.report_rss();
}

// ---------------------------------------------------------------------------------------------
// The matrix

macro_rules! interop_version {
    ($module:ident, $version:literal) => {
        mod $module {
            use super::*;
            const V: Peer = Peer::Upstream($version);

            #[test]
            fn upstream_ingress_to_our_egress() {
                basic(V, Peer::Ours);
            }

            #[test]
            fn our_ingress_to_upstream_egress() {
                basic(Peer::Ours, V);
            }

            #[test]
            fn upstream_ingress_to_our_egress_rotated_key() {
                rotation(V, Peer::Ours);
            }

            #[test]
            fn our_ingress_to_upstream_egress_rotated_key() {
                rotation(Peer::Ours, V);
            }

            /// Control: upstream on both sides passes the same checks, so the harness
            /// (configs, waits, expectations) is right.
            #[test]
            fn control_upstream_to_upstream() {
                basic(V, V);
            }

            /// Control for the rotation checks (slow; run with `--ignored`).
            #[test]
            #[ignore = "control for the harness; 10 s"]
            fn control_upstream_to_upstream_rotated_key() {
                rotation(V, V);
            }
        }
    };
}

interop_version!(v2_12_0, "2.12.0");
interop_version!(v2_9_0, "2.9.0");
interop_version!(v2_7_3, "2.7.3");
