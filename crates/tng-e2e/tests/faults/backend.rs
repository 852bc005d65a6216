//! The service behind the egress down, resetting, closing mid-response or slow: the client
//! gets the documented status and error code within a bounded time, and neither gateway keeps
//! a socket for the failed exchange.

use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::*;

use crate::common::*;

/// How long any single failing request may take (generous; they fail in milliseconds).
const BOUND: Duration = Duration::from_secs(10);

fn timed_post(url: &str, body: &str) -> (RawResponse, Duration) {
    let start = Instant::now();
    let r = curl_status(&["--max-time", "30", "--data-binary", body, url]);
    (r, start.elapsed())
}

#[test]
fn backend_down_is_502_connect_upstream_failed_and_recovers() {
    let mut backend = Backend::start();
    let addr = backend.addr().to_string();
    let t = tunnel(&addr, json!({}), json!({}));
    let r = curl_status(&["-d", "warm", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "warm".to_string()));
    let egress_sockets = open_sockets(t.egress.proc.pid());
    let ingress_sockets = open_sockets(t.ingress.proc.pid());

    backend.proc.terminate();
    for i in 0..10 {
        let (r, took) = timed_post(&t.url("/echo"), &format!("attempt {i}"));
        assert!(took < BOUND, "took {took:?}");
        let message = assert_egress_502(&r, "ConnectUpstreamFailed");
        // The service's address and the cause are the egress's to log, not to send.
        assert!(!message.contains(&addr), "{message}");
    }
    let line = t.egress.wait_for_log("ConnectUpstreamFailed", GENEROUS);
    let log = t.egress.log();
    assert!(
        log.contains(&format!("cannot connect to the service at {addr}"))
            && log.contains("Connection refused"),
        "{line}"
    );
    let e = settle_sockets(t.egress.proc.pid(), egress_sockets, GENEROUS);
    let i = settle_sockets(t.ingress.proc.pid(), ingress_sockets, GENEROUS);
    println!(
        "[faults] backend down: sockets egress {egress_sockets} -> {e}, ingress {ingress_sockets} -> {i}"
    );
    assert!(
        e <= egress_sockets,
        "egress sockets {egress_sockets} -> {e}"
    );
    assert!(
        i <= ingress_sockets,
        "ingress sockets {ingress_sockets} -> {i}"
    );

    // The same service back on its port: served again, nothing to restart.
    let _back = backend_at(&addr);
    let r = curl_status(&["-d", "back", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "back".to_string()));
}

#[test]
fn resetting_backend_is_502_once_per_request() {
    let service = BadService::start(Misbehaviour::ResetOnRequest);
    let t = tunnel(&service.addr(), json!({}), json!({}));
    // The ingress keeps its outer connection for the next request: counted from the first
    // failure on, anything more is a socket held for a failed exchange.
    let mut egress_sockets = 0;
    for i in 0..5 {
        let (r, took) = timed_post(&t.url("/echo"), &format!("reset {i}"));
        assert!(took < BOUND, "took {took:?}");
        let message = assert_egress_502(&r, "HttpPlainTextForwardError");
        assert!(!message.contains(&service.addr()), "{message}");
        if i == 0 {
            egress_sockets = open_sockets(t.egress.proc.pid());
        }
    }
    // No retry storm: one connection to the service per request.
    assert_eq!(
        service
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        5
    );
    let e = settle_sockets(t.egress.proc.pid(), egress_sockets, GENEROUS);
    assert!(
        e <= egress_sockets,
        "egress sockets {egress_sockets} -> {e}"
    );
}

#[test]
fn backend_closing_mid_response_cuts_the_clients_body() {
    let service = BadService::start(Misbehaviour::CloseMidResponse);
    let t = tunnel(&service.addr(), json!({}), json!({}));
    let egress_sockets = open_sockets(t.egress.proc.pid());
    for _ in 0..3 {
        let start = Instant::now();
        let (exit, status, body) = curl_raw(&[&t.url("/anything")]);
        assert!(start.elapsed() < BOUND);
        // The head was already on its way: the status stays 200, the body is cut short and
        // the client sees a truncated transfer (curl 18), never a short "complete" body.
        assert_eq!(
            (exit, status),
            (18, 200),
            "body {:?}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            b"partial-".starts_with(&body),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
    }
    t.ingress
        .wait_for_log("response from the egress broke off", GENEROUS);
    // A cut outer response cannot go back to the pool: both outer connections are gone.
    let e = settle_sockets(t.egress.proc.pid(), egress_sockets, GENEROUS);
    assert!(
        e <= egress_sockets,
        "egress sockets {egress_sockets} -> {e}"
    );
}

#[test]
fn slow_backend_is_504_and_its_connection_is_closed() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({"limits": {"response_timeout": 1}}),
        json!({}),
    );
    let (r, took) = timed_post(&t.url("/slow?ms=15000"), "");
    assert!(took < BOUND, "took {took:?}");
    let (status, code, message) = error_of(&r);
    assert_eq!(
        (status, code.as_str()),
        (504, "HttpCipherTextBadResponse"),
        "{message}"
    );
    assert!(
        message.contains("the egress answered 504 Gateway Timeout"),
        "{message}"
    );
    assert!(message.contains("(UpstreamResponseTimeout)"), "{message}");
    // The service would answer after 15 s; the egress must have hung up long before.
    let left = settle_connections(t.egress.proc.pid(), backend.port(), Duration::from_secs(5));
    assert_eq!(
        left, 0,
        "the egress keeps its connection to the slow service"
    );
    let r = curl_status(&["-d", "fast", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "fast".to_string()));
}

#[test]
fn client_giving_up_releases_the_backend_connection() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let (exit, _, _) = curl_raw(&["--max-time", "1", &t.url("/slow?ms=15000")]);
    assert_eq!(exit, 28, "curl should have timed out");
    let left = settle_connections(t.egress.proc.pid(), backend.port(), Duration::from_secs(5));
    assert_eq!(
        left, 0,
        "the egress keeps serving a request whose client is gone"
    );
    let left = settle_connections(t.ingress.proc.pid(), t.egress_port, Duration::from_secs(5));
    println!("[faults] client gave up: ingress->egress connections left {left}");
}

/// The client sees the cut (curl 18) and the egress, the one component that saw the service
/// break, says so in its log.
#[test]
fn backend_closing_mid_response_is_logged_by_the_egress() {
    let service = BadService::start(Misbehaviour::CloseMidResponse);
    let t = tunnel(&service.addr(), json!({}), json!({}));
    let (exit, status, _) = curl_raw(&[&t.url("/anything")]);
    assert_eq!((exit, status), (18, 200));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = t.egress.log();
        let reported = log
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains("response from the service broke off"));
        if reported {
            return;
        }
        assert!(Instant::now() < deadline, "egress log:\n{log}");
        pause(Duration::from_millis(50));
    }
}

/// The ingress relays an egress 502 as its own 502 `HttpCipherTextBadResponse` whose message
/// carries the egress's code `egress_code` (and nothing else of its answer); returns it.
fn assert_egress_502(r: &RawResponse, egress_code: &str) -> String {
    let (status, code, message) = error_of(r);
    assert_eq!(
        (status, code.as_str()),
        (502, "HttpCipherTextBadResponse"),
        "{message}"
    );
    assert_eq!(
        message,
        format!("the egress answered 502 Bad Gateway ({egress_code})")
    );
    message
}
