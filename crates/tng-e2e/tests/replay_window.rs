//! Replay protection on the egress (RFC 9458 §6.5, `limits.replay_window`): a captured
//! encapsulated request replayed byte for byte is refused and never reaches the service; a
//! request whose inner `Date` is outside the window is refused inside the tunnel.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tng_e2e::hardening::{connect, exchange};
use tng_e2e::*;

const GENEROUS: Duration = Duration::from_secs(20);

/// An HTTP-date `offset` (e.g. "-10 min") from now, formatted by date(1).
fn http_date(offset: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", offset, "+%a, %d %b %Y %H:%M:%S GMT"])
        .output()
        .expect("run date");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Backend ← egress ← recording relay ← ingress, with `egress_extra` merged into the egress.
struct Recorded {
    backend: Backend,
    egress: Tng,
    egress_addr: String,
    relay: Relay,
    ingress: Tng,
    ingress_port: u16,
}

impl Recorded {
    fn start(egress_extra: serde_json::Value) -> Recorded {
        let backend = Backend::start();
        let (egress, egress_port) = launch_egress(backend.addr(), egress_extra);
        let egress_addr = format!("127.0.0.1:{egress_port}");
        let relay = Relay::start(&egress_addr);
        let (ingress, ingress_port) =
            launch_ingress(&format!("127.0.0.1:{}", relay.port()), json!({}));
        Recorded {
            backend,
            egress,
            egress_addr,
            relay,
            ingress,
            ingress_port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ingress_port)
    }

    /// Sends one request through the tunnel and returns the raw bytes of the encapsulated
    /// request as the relay saw them (after a warm-up that fetched the key config).
    fn capture_one(&self, body: &str) -> Vec<u8> {
        assert_eq!(curl_status(&[&self.url("/warm")]).status, 200);
        self.relay.clear();
        let r = curl_status(&["-d", body, &self.url("/echo")]);
        assert_eq!((r.status, r.text()), (200, body.to_string()));
        let captured = self.relay.upstream();
        let messages = split_requests(&captured);
        assert_eq!(messages.len(), 1, "expected one outer request");
        assert_eq!(
            messages[0].header("x-tng-ohttp-api").as_deref(),
            Some("/tng/tunnel")
        );
        captured
    }

    fn replay(&self, captured: &[u8]) -> RawResponse {
        let mut conn = connect(&self.egress_addr);
        exchange(&mut conn, captured, GENEROUS)
    }
}

#[test]
fn a_captured_request_replayed_byte_for_byte_is_refused() {
    let r = Recorded::start(json!({}));
    let captured = r.capture_one("pay me once");
    assert_eq!(r.backend.requests(), 2, "warm-up + the request");
    for attempt in 0..2 {
        let answer = r.replay(&captured);
        assert_eq!(answer.status, 400, "attempt {attempt}: {}", answer.text());
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.json(),
            json!({
                "code": "ReplayedRequest",
                "message": "an encapsulated request with this HPKE encapsulated key was already accepted; replayed requests are refused"
            })
        );
    }
    r.egress.wait_for_log("ReplayedRequest", GENEROUS);
    assert_eq!(r.backend.requests(), 2, "the replay reached the backend");
    // Fresh requests keep working.
    let ok = curl_status(&["-d", "next", &r.url("/echo")]);
    assert_eq!((ok.status, ok.text()), (200, "next".to_string()));
    assert_eq!(r.backend.requests(), 3);
    drop(r.ingress);
}

#[test]
fn inner_dates_outside_the_window_are_refused_inside_the_tunnel() {
    let r = Recorded::start(json!({}));
    for offset in ["-10 min", "+10 min"] {
        let date = http_date(offset);
        let answer = curl_status(&[
            "-H",
            &format!("date: {date}"),
            "-d",
            "late",
            &r.url("/echo"),
        ]);
        assert_eq!(answer.status, 400, "{offset}: {}", answer.text());
        assert_eq!(answer.header("content-type"), Some("text/plain"));
        let text = answer.text();
        let expected = format!(
            "request Date {date} is outside the replay window of 60s around the egress time "
        );
        assert!(text.starts_with(&expected), "{offset}: {text:?}");
    }
    r.egress.wait_for_log(
        "tunnel request refused with 400: Date outside the replay window",
        GENEROUS,
    );
    assert_eq!(
        r.backend.requests(),
        0,
        "a stale request reached the backend"
    );
    // A client-supplied Date within the window, and the ingress's own Date, both pass.
    let date = http_date("-20 sec");
    let ok = curl_status(&[
        "-H",
        &format!("date: {date}"),
        "-d",
        "fresh",
        &r.url("/headers"),
    ]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["date"], date.as_str());
    let ok = curl_status(&[&r.url("/headers")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        ok.json()["date"]
            .as_str()
            .is_some_and(|d| d.ends_with(" GMT")),
        "the ingress adds a Date"
    );
    assert_eq!(r.backend.requests(), 2);
}

#[test]
fn replay_window_zero_turns_the_protection_off() {
    let r = Recorded::start(json!({"limits": {"replay_window": 0}}));
    let captured = r.capture_one("exposed");
    let answer = r.replay(&captured);
    // Accepted again: a sealed response (which the replayer cannot read) and a second
    // delivery to the service. This is the exposure the default window closes.
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("message/ohttp-chunked-res")
    );
    assert_eq!(
        r.backend.requests(),
        3,
        "warm-up + the request + its replay"
    );
    let date = http_date("-10 min");
    let old = curl_status(&["-H", &format!("date: {date}"), "-d", "old", &r.url("/echo")]);
    assert_eq!((old.status, old.text()), (200, "old".to_string()));
}

/// Anyone who reaches the egress can fill the replay set with valid requests of their own.
/// The flood is from 127.0.0.2, the ingress's requests from 127.0.0.1: once the set is full
/// the flooding source is refused and the clients are still served. `FLOOD_CAPACITY`,
/// `FLOOD_REQUESTS` and `FLOOD_THREADS` scale it up for the figures in bench/hardening.md.
#[test]
fn a_replay_set_flood_sheds_the_flooding_source_not_the_clients() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tng_e2e::sealed::{Inner, SealedClient};

    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let capacity = env("FLOOD_CAPACITY", 400);
    let flood = env("FLOOD_REQUESTS", 3000);
    let threads = env("FLOOD_THREADS", 2);
    let r = Recorded::start(json!({"limits": {"replay_capacity": capacity}}));
    let client = Arc::new(SealedClient::fetch(&r.egress_addr));
    // The access log has one line per served request by design (and its own switch,
    // `RUST_LOG=tng::access_log=off`): what must stay bounded is everything else.
    let log_len = || {
        r.egress
            .log()
            .lines()
            .filter(|l| !l.contains("tng::access_log"))
            .map(|l| l.len() + 1)
            .sum::<usize>()
    };
    let log_before = log_len();
    let (accepted, full, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let started = std::time::Instant::now();
    let flooders: Vec<_> = (0..threads)
        .map(|_| {
            let (client, accepted, full, other) = (
                client.clone(),
                accepted.clone(),
                full.clone(),
                other.clone(),
            );
            std::thread::spawn(move || {
                let mut conn = client.connect_from("127.0.0.2");
                for _ in 0..flood / threads {
                    let answer = client.send_on(&mut conn, &Inner::get("/x"));
                    match answer.outer.status {
                        200 => accepted.fetch_add(1, Ordering::SeqCst),
                        503 => {
                            assert_eq!(answer.outer.json()["code"], "ReplayCacheFull");
                            full.fetch_add(1, Ordering::SeqCst)
                        }
                        _ => other.fetch_add(1, Ordering::SeqCst),
                    };
                    if answer.outer.header("connection") == Some("close") {
                        conn = client.connect_from("127.0.0.2");
                    }
                }
            })
        })
        .collect();
    // The clients, through the ingress, once the set is full and while the flood goes on.
    // At most 30 of them: each is remembered for the whole window, and the reserve for
    // other sources is an eighth of the capacity.
    while full.load(Ordering::SeqCst) == 0 && !flooders.iter().all(|f| f.is_finished()) {
        pause(Duration::from_millis(5));
    }
    let (mut served, mut refused) = (0u64, Vec::new());
    let mut during_flood = 0u64;
    let mut conn = connect(&format!("127.0.0.1:{}", r.ingress_port));
    while served + (refused.len() as u64) < 30 {
        let flooding = !flooders.iter().all(|f| f.is_finished());
        let answer = exchange(
            &mut conn,
            b"GET /echo HTTP/1.1\r\nhost: service\r\n\r\n",
            GENEROUS,
        );
        if answer.status == 200 {
            served += 1;
            if flooding {
                during_flood += 1;
            }
        } else {
            refused.push((answer.status, answer.text()));
        }
        pause(Duration::from_millis(20));
    }
    for f in flooders {
        f.join().expect("flooder");
    }
    let took = started.elapsed();
    let log_bytes = log_len() - log_before;
    let (accepted, full, other) = (
        accepted.load(Ordering::SeqCst),
        full.load(Ordering::SeqCst),
        other.load(Ordering::SeqCst),
    );
    println!(
        "[replay-flood] capacity {capacity}, {flood} flood requests in {:.1} s ({:.0}/s): \
         {accepted} accepted, {full} refused 503 ReplayCacheFull, {other} other; clients: \
         {served} served ({during_flood} while the set was full and the flood went on), {} \
         refused; egress log +{log_bytes} bytes",
        took.as_secs_f64(),
        flood as f64 / took.as_secs_f64(),
        refused.len()
    );
    assert_eq!(other, 0);
    assert!(full > 0, "the flood never filled the set");
    assert!(accepted + 5 >= capacity, "{accepted} < {capacity}");
    assert!(refused.is_empty(), "clients refused: {refused:?}");
    assert_eq!(served, 30);
    assert!(
        during_flood > 0,
        "the flood ended before any client request"
    );
    // One line per refusal would be ~100 bytes each; the rate limit collapses them.
    assert!(
        log_bytes < 64 * 1024 + 200 * full as usize / 100,
        "egress log grew by {log_bytes} bytes for {full} refusals; its end:\n{}",
        r.egress.log_tail(30)
    );
}
