//! No plaintext leaks on any failure path. Each fault of `faults.rs` is provoked again with
//! requests that carry unique markers in the inner query, path, a header, the body and (through
//! the backend's `x-set-*`) a response header; a recording relay between ingress and egress
//! keeps the exact outer bytes in both directions. No marker may ever appear there, whatever
//! failed.
//!
//! The same on the real wire: the founding topology in network namespaces with nginx on the
//! gateway and `tcpdump` on every gateway interface, through backend down, egress SIGKILL and
//! restart (422 + replay) and a 504.
//!
//! Also: the answers clients get on those paths (and the gateways' logs) never contain key
//! material (the egress's file key: raw hex, raw base64, PEM body) or attestation tokens.

#[path = "attestation/stack.rs"]
#[allow(dead_code)]
mod stack;

#[path = "faults/common.rs"]
mod common;

#[path = "netns/mod.rs"]
mod netns;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::json;
use stack::*;
use tng_e2e::keys::write_x25519_pem;
use tng_e2e::net::find;
use tng_e2e::*;

/// Everything the sweep saw.
#[derive(Default)]
struct Sweep {
    markers: Vec<String>,
    /// Outer bytes per case: (case, ingress → egress, egress → ingress).
    outer: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// What clients got when a request failed: (case, status, body).
    errors: Vec<(String, u16, Vec<u8>)>,
    /// (process, whole log).
    logs: Vec<(String, String)>,
    /// Strings no client answer and no log line may contain.
    secrets: Vec<(String, String)>,
}

/// The markers of one request.
struct Marks {
    query: String,
    path: String,
    header: String,
    body: String,
    response: String,
}

impl Sweep {
    fn marks(&mut self, case: &str) -> Marks {
        let n = self.markers.len();
        let tag =
            |what: &str| format!("{what}MARK{n}x{}x{case}", std::process::id()).replace(' ', "_");
        let m = Marks {
            query: tag("q"),
            path: tag("p"),
            header: tag("h"),
            body: tag("b"),
            response: tag("r"),
        };
        for s in [&m.query, &m.path, &m.header, &m.body, &m.response] {
            self.markers.push(s.clone());
        }
        m
    }

    /// A marked `POST /echo` (body repeated to `body_len` bytes) and a marked `GET /<path>`
    /// through `base` (`http://ingress`); failures are recorded. Returns the two statuses
    /// (0: the transfer failed).
    fn send(&mut self, case: &str, base: &str, body_len: usize, target: &str) -> (u16, u16) {
        let m = self.marks(case);
        let dir = test_dir("leak-body");
        let file = dir.join("body");
        let mut body = Vec::new();
        while body.len() < body_len.max(m.body.len()) {
            body.extend_from_slice(m.body.as_bytes());
            body.push(b' ');
        }
        std::fs::write(&file, &body).expect("write body");
        let header = format!("x-marker: {}", m.header);
        let set = format!("x-set-x-resp: {}", m.response);
        let post = format!("{base}{target}?q={}", m.query);
        let get = format!("{base}/{}", m.path);
        let data = format!("@{}", file.display());
        let a = curl_raw(&["-H", &header, "-H", &set, "--data-binary", &data, &post]);
        let b = curl_raw(&["-H", &header, "-H", &set, &get]);
        let _ = std::fs::remove_file(&file);
        // Positive control: where the exchange worked, the marks did reach the service.
        if (a.0, a.1) == (0, 200) && target == "/echo" {
            assert_eq!(a.2, body, "{case}: the echo lost the body");
        }
        for (exit, status, body) in [a.clone(), b.clone()] {
            if exit != 0 || status != 200 {
                self.errors.push((case.to_string(), status, body));
            }
        }
        (
            if a.0 == 0 { a.1 } else { 0 },
            if b.0 == 0 { b.1 } else { 0 },
        )
    }

    fn record(&mut self, case: &str, relay: &Relay) {
        self.outer
            .push((case.to_string(), relay.upstream(), relay.downstream()));
    }

    fn logs(&mut self, name: &str, tng: &Tng) {
        self.logs.push((name.to_string(), tng.log()));
    }

    /// The raw private key of a PEM file key, in the forms it could leak in.
    fn file_key_secret(&mut self, pem_path: &std::path::Path) {
        let pem = std::fs::read_to_string(pem_path).expect("read key");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .expect("PEM base64");
        let raw = &der[der.len() - 32..];
        self.secrets.push(("PEM body".into(), b64.clone()));
        self.secrets.push(("raw key hex".into(), hex::encode(raw)));
        self.secrets.push((
            "raw key base64".into(),
            base64::engine::general_purpose::STANDARD.encode(raw),
        ));
        self.secrets.push((
            "raw key base64url".into(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        ));
    }
}

/// backend ← egress ← relay ← ingress.
struct Leg {
    egress: Tng,
    egress_port: u16,
    relay: Relay,
    ingress: Tng,
    ingress_port: u16,
}

impl Leg {
    fn start(backend: &str, egress_extra: serde_json::Value) -> Leg {
        let (egress, egress_port) = launch_egress(backend, egress_extra);
        let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
        let (ingress, ingress_port) =
            launch_ingress(&format!("127.0.0.1:{}", relay.port()), json!({}));
        Leg {
            egress,
            egress_port,
            relay,
            ingress,
            ingress_port,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    fn finish(self, sweep: &mut Sweep, case: &str) {
        sweep.record(case, &self.relay);
        sweep.logs(&format!("{case} ingress"), &self.ingress);
        sweep.logs(&format!("{case} egress"), &self.egress);
        let _ = self.egress_port;
    }
}

fn plain_cases(sweep: &mut Sweep) {
    let backend = Backend::start();

    // Control: the relay does see the tunnel, so its silence about markers means something.
    let leg = Leg::start(backend.addr(), json!({}));
    assert_eq!(sweep.send("success", &leg.base(), 100, "/echo"), (200, 200));
    leg.finish(sweep, "success");

    let mut gone = Backend::start();
    let gone_addr = gone.addr().to_string();
    gone.proc.terminate();
    let leg = Leg::start(&gone_addr, json!({}));
    assert_eq!(
        sweep.send("backend down", &leg.base(), 100, "/echo"),
        (502, 502)
    );
    leg.finish(sweep, "backend down");

    let service = BadService::start(Misbehaviour::ResetOnRequest);
    let leg = Leg::start(&service.addr(), json!({}));
    assert_eq!(
        sweep.send("backend reset", &leg.base(), 100, "/echo"),
        (502, 502)
    );
    leg.finish(sweep, "backend reset");

    let service = BadService::start(Misbehaviour::CloseMidResponse);
    let leg = Leg::start(&service.addr(), json!({}));
    assert_eq!(sweep.send("backend cut", &leg.base(), 100, "/echo"), (0, 0));
    leg.finish(sweep, "backend cut");

    let leg = Leg::start(backend.addr(), json!({"limits": {"response_timeout": 1}}));
    // `/slow` ignores the body; the marks ride along in query, header and body.
    let marks = sweep.marks("slow 504");
    let r = curl_raw(&[
        "-H",
        &format!("x-marker: {}", marks.header),
        "--data-binary",
        &marks.body,
        &format!("{}/slow?ms=5000&q={}", leg.base(), marks.query),
    ]);
    assert_eq!((r.0, r.1), (0, 504));
    sweep.errors.push(("slow 504".into(), r.1, r.2));
    leg.finish(sweep, "slow 504");
}

fn egress_killed(sweep: &mut Sweep) {
    let backend = Backend::start();
    let mut leg = Leg::start(backend.addr(), json!({}));
    assert_eq!(
        sweep.send("before the kill", &leg.base(), 100, "/echo"),
        (200, 200)
    );
    let marks = sweep.marks("egress killed");
    let url = format!("{}/slow?ms=3000&q={}", leg.base(), marks.query);
    let header = format!("x-marker: {}", marks.header);
    let body = marks.body.clone();
    let in_flight =
        std::thread::spawn(move || curl_raw(&["-H", &header, "--data-binary", &body, &url]));
    let deadline = Instant::now() + GENEROUS;
    while backend.requests() < 2 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        pause(Duration::from_millis(20));
    }
    kill(&mut leg.egress.proc);
    let r = in_flight.join().expect("curl thread");
    assert_eq!(r.1, 502, "{:?}", String::from_utf8_lossy(&r.2));
    sweep.errors.push(("egress killed".into(), r.1, r.2));
    sweep.logs("killed egress", &leg.egress);
    // A new egress (new key): 422, refetch, replay — all of it on the outer leg.
    let new = relaunch(&leg.egress, "egress-restarted");
    drop(std::mem::replace(&mut leg.egress, new));
    assert_eq!(
        sweep.send("after the restart", &leg.base(), 100, "/echo"),
        (200, 200)
    );
    assert!(
        count(&leg.relay.downstream(), b"ServerKeyConfigNotFound") >= 1,
        "the restart did not go through a 422"
    );
    leg.finish(sweep, "egress killed");
}

fn key_rotated(sweep: &mut Sweep) {
    let backend = Backend::start();
    let dir = test_dir("leak-key");
    let pem = dir.join("key.pem");
    write_x25519_pem(&pem, "leak one");
    sweep.file_key_secret(&pem);
    let leg = Leg::start(
        backend.addr(),
        json!({"ohttp": {"key": {"source": "file", "path": pem.display().to_string()}}}),
    );
    assert_eq!(
        sweep.send("file key", &leg.base(), 100, "/echo"),
        (200, 200)
    );
    let old = leg.egress.egress_public_keys(0);
    let wait_new = |old: &Vec<String>| {
        let deadline = Instant::now() + GENEROUS;
        while &leg.egress.egress_public_keys(0) == old {
            assert!(Instant::now() < deadline, "key file change not picked up");
            pause(Duration::from_millis(100));
        }
        leg.egress.egress_public_keys(0)
    };
    write_x25519_pem(&pem, "leak two");
    sweep.file_key_secret(&pem);
    let new = wait_new(&old);
    // Small bodies are replayed after the 422; a big one cannot be: 502 ServerKeyChanged.
    assert_eq!(
        sweep.send("key rotated, replayed", &leg.base(), 100, "/echo"),
        (200, 200)
    );
    write_x25519_pem(&pem, "leak three");
    sweep.file_key_secret(&pem);
    wait_new(&new);
    let (big, _) = sweep.send(
        "key rotated, not replayable",
        &leg.base(),
        200 * 1024,
        "/echo",
    );
    assert_eq!(big, 502);
    assert!(count(&leg.relay.downstream(), b"ServerKeyConfigNotFound") >= 2);
    leg.finish(sweep, "key rotated");
}

fn attestation_cases(sweep: &mut Sweep) {
    let aa = Aa::start(&[]);
    let mut service = As::start(&[("strict", CONTRAINDICATING_POLICY)], &[]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["default"]));
    let base = format!("http://127.0.0.1:{}", gw.ingress_port);
    assert_eq!(sweep.send("attested", &base, 100, "/echo"), (200, 200));
    let token = gw.server_attestation();
    let signature = token.rsplit('.').next().unwrap_or_default().to_string();
    sweep.secrets.push(("EAR token".into(), token));
    sweep
        .secrets
        .push(("EAR token signature".into(), signature));

    // A verdict against the server: the AS signs a contraindicated token the ingress refuses.
    let strict_port = free_port();
    let strict = Tng::launch_named(
        "ingress-strict",
        json!({"add_ingress": [ingress_entry(strict_port, gw.relay.port(), verify_bg(&service, &["strict"]))]}),
    );
    let strict_base = format!("http://127.0.0.1:{strict_port}");
    assert_eq!(
        sweep.send("contraindicated", &strict_base, 100, "/echo"),
        (502, 502)
    );
    sweep.logs("strict ingress", &strict);

    // The AS gone: an ingress that has not verified yet cannot (503); the verified one keeps
    // its key. (It must start while the AS is up: it fetches the signer certificates then.)
    let down_port = free_port();
    let down = Tng::launch_named(
        "ingress-as-down",
        json!({"add_ingress": [ingress_entry(down_port, gw.relay.port(), verify_bg(&service, &["default"]))]}),
    );
    service.stop();
    let down_base = format!("http://127.0.0.1:{down_port}");
    assert_eq!(sweep.send("AS down", &down_base, 100, "/echo"), (503, 503));
    sweep.logs("ingress, AS down", &down);
    assert_eq!(
        sweep.send("AS down, cached key", &base, 100, "/echo"),
        (200, 200)
    );
    sweep.record("attestation", &gw.relay);
    sweep.logs("attested ingress", &gw.ingress);
    sweep.logs("attesting egress", &gw.egress);

    // Evidence that does not match the key: the AS refuses it.
    let bad_aa = Aa::start(&["--wrong-report-data"]);
    let service = As::start(&[], &[]);
    let bad = Gateway::start(Some(attest_bg(&bad_aa)), verify_bg(&service, &["default"]));
    let bad_base = format!("http://127.0.0.1:{}", bad.ingress_port);
    assert_eq!(
        sweep.send("bad evidence", &bad_base, 100, "/echo"),
        (502, 502)
    );
    sweep.record("bad evidence", &bad.relay);
    sweep.logs("bad evidence ingress", &bad.ingress);
    sweep.logs("bad evidence egress", &bad.egress);
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        n += 1;
        rest = &rest[i + needle.len()..];
    }
    n
}

#[test]
fn no_failure_path_leaks_plaintext_or_secrets() {
    let mut sweep = Sweep::default();
    plain_cases(&mut sweep);
    egress_killed(&mut sweep);
    key_rotated(&mut sweep);
    attestation_cases(&mut sweep);

    let mut outer_bytes = 0;
    let mut tunnel_requests = 0;
    for (case, up, down) in &sweep.outer {
        outer_bytes += up.len() + down.len();
        tunnel_requests += count(&up.to_ascii_lowercase(), b"/tng/tunnel");
        for marker in &sweep.markers {
            for (direction, bytes) in [("ingress → egress", up), ("egress → ingress", down)] {
                assert!(
                    find(bytes, marker.as_bytes()).is_none(),
                    "{case}: plaintext {marker:?} crossed the outer leg ({direction})"
                );
            }
        }
    }
    // The capture is not empty: tunnel requests of every kind were on it.
    assert!(
        tunnel_requests >= 15,
        "only {tunnel_requests} tunnel requests captured"
    );

    let mut checked = 0;
    for (case, status, body) in &sweep.errors {
        let text = String::from_utf8_lossy(body);
        for (what, secret) in &sweep.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{case}: the {status} answer contains the {what}: {text}"
            );
        }
        // Whatever token it may be: a JWS header never belongs in an error answer.
        assert!(
            !text.contains("eyJ"),
            "{case}: a token in the answer: {text}"
        );
        assert!(!text.contains("PRIVATE KEY"), "{case}: {text}");
        checked += 1;
    }
    let mut lines = 0;
    for (name, log) in &sweep.logs {
        for line in log.lines() {
            lines += 1;
            for (what, secret) in &sweep.secrets {
                assert!(
                    !line.contains(secret.as_str()),
                    "{name}: a log line contains the {what}: {line}"
                );
            }
        }
    }
    println!(
        "[leaks] {} markers, {} outer bytes with {tunnel_requests} tunnel requests, {checked} \
         error answers and {lines} log lines checked against {} secrets: nothing leaked",
        sweep.markers.len(),
        outer_bytes,
        sweep.secrets.len()
    );
}

#[test]
fn gateway_capture_shows_no_plaintext_on_failure_paths() {
    use netns::*;
    if !can_run("gateway_capture_shows_no_plaintext_on_failure_paths") {
        return;
    }
    let topo = Topology::new("leaks-wire");
    let t = &topo;
    let mut backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    let _nginx = gateway_nginx(t, "");
    let mut egress_config = egress_config(8080, true);
    egress_config["add_egress"][0]["limits"] = json!({"response_timeout": 1});
    let launch_egress =
        |name: &str| NsTng::launch(t, Side::Server, name, egress_config.clone(), 7001);
    let mut egress = launch_egress("egress");
    let _ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress",
        ingress_config(json!({"port": 8080})),
        7000,
    );
    let dump = Tcpdump::start(t, Side::Gateway);
    let mut markers = Vec::new();
    let mut send = |case: &str, path: &str| {
        let n = markers.len();
        let mark = |what: &str| format!("{what}WIRE{n}x{}x{case}", t.n).replace(' ', "_");
        let (q, h, b, r) = (mark("q"), mark("h"), mark("b"), mark("r"));
        // Inner paths outside the rewrite rule travel to nginx's `location = /`.
        let url = format!("http://{}:8080{path}&q={q}", t.gw_ip);
        let out = t.http(
            Side::Client,
            &[
                "-H",
                &format!("x-marker: {h}"),
                "-H",
                &format!("x-set-x-resp: {r}"),
                "--data-binary",
                &b,
                &url,
            ],
        );
        markers.extend([q, h, b, r]);
        out.status
    };

    assert_eq!(send("success", "/echo?x=1"), 200);
    backend.terminate();
    assert_eq!(send("backend down", "/echo?x=1"), 502);
    let _backend = t.backend(Side::Server, "backend-again", "0.0.0.0:8080");
    egress.kill();
    assert_eq!(send("egress killed", "/echo?x=1"), 502);
    // A new key: the ingress's first attempt is refused with 422 on the wire, then replayed.
    let _egress = launch_egress("egress-restarted");
    assert_eq!(send("egress restarted", "/echo?x=1"), 200);
    assert_eq!(send("slow 504", "/slow?ms=4000"), 504);
    // Positive control: port 9090 is not captured, so this marker crosses in plaintext and
    // the capture must show it.
    let visible = format!("plainWIRE{}visible", t.n);
    t.http(
        Side::Client,
        &[&format!("http://{}:9090/{visible}", t.gw_ip)],
    );
    let pcap = dump.stop(t);
    assert!(contains(&pcap, &visible), "the capture misses plaintext");

    assert!(
        contains(&pcap, "x-tng-ohttp-api"),
        "the capture holds no tunnel traffic"
    );
    assert!(
        contains(&pcap, "ServerKeyConfigNotFound"),
        "the capture does not hold the 422"
    );
    for m in &markers {
        assert!(!contains(&pcap, m), "plaintext {m:?} crossed the gateway");
    }
    println!(
        "[leaks] wire: {} markers, {} bytes of gateway capture: nothing leaked",
        markers.len(),
        pcap.len()
    );
}
