//! Resource limits (`limits` on an ingress or egress): each refusal has its exact status and a
//! log line, and the gateway keeps serving valid traffic afterwards. Timeouts are configured
//! short and only checked against generous bounds.

use std::time::Duration;

use serde_json::{json, Value};
use tng_e2e::hardening::{
    connect, exchange, h2_concurrent_gets, h2_server_settings, stays_open, wait_closed,
};
use tng_e2e::net::build_post;
use tng_e2e::*;

const GENEROUS: Duration = Duration::from_secs(20);

fn limits(l: Value) -> Value {
    json!({ "limits": l })
}

fn header_args(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|i| ["-H".to_string(), format!("x-filler-{i}: v")])
        .collect()
}

fn curl_with(url: &str, extra: &[String]) -> RawResponse {
    let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
    args.push(url);
    curl_status(&args)
}

fn assert_still_serving(t: &Tunnel, what: &str) {
    let body = format!("still serving after {what}");
    let ok = curl_status(&["-d", &body, &t.url("/echo")]);
    assert_eq!((ok.status, ok.text()), (200, body), "{what}");
}

#[test]
fn request_heads_over_the_limits_get_431() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"max_headers": 20, "max_header_bytes": 4096})),
    );
    // Too many header lines (HTTP/1.1): hyper's parser refuses them.
    let r = curl_with(&t.url("/echo"), &header_args(25));
    assert_eq!(r.status, 431, "{}", r.text());
    t.ingress
        .wait_for_log("request head over the limits", GENEROUS);
    assert_still_serving(&t, "too many headers");

    // Few lines but too many bytes: within hyper's buffer, refused by our exact check.
    let big = format!("x-big: {}", "b".repeat(5000));
    let r = curl_with(&t.url("/echo"), &["-H".into(), big.clone()]);
    assert_eq!(r.status, 431, "{}", r.text());
    assert_eq!(r.text(), "request header fields too large\n");
    assert_still_serving(&t, "a header block over max_header_bytes");

    // HTTP/2: the same field count is a 431 on the stream.
    let mut args = header_args(25);
    args.push("--http2-prior-knowledge".into());
    let r = curl_with(&t.url("/echo"), &args);
    assert_eq!(r.status, 431, "{}", r.text());
    // Under both limits passes (the echoed response stays under them too).
    let mut args = header_args(10);
    args.extend(["-d".into(), "ok".into()]);
    let r = curl_with(&t.url("/echo"), &args);
    assert_eq!((r.status, r.text()), (200, "ok".to_string()));
    // Only the requests that passed reached the backend.
    assert_eq!(backend.requests(), 3);
}

#[test]
fn inner_heads_over_the_egress_limits_get_431_inside_the_tunnel() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        limits(json!({"max_headers": 20, "max_header_bytes": 2048})),
        json!({}),
    );
    // The ingress (default limits) lets 25 headers through; the egress refuses the inner
    // request, and the client receives its 431 through the tunnel.
    let r = curl_with(&t.url("/echo"), &header_args(25));
    assert_eq!(r.status, 431, "{}", r.text());
    assert!(
        r.text()
            .starts_with("request header fields too large (inside the tunnel): "),
        "{}",
        r.text()
    );
    t.egress
        .wait_for_log("inner request head refused with 431", GENEROUS);
    let big = format!("x-big: {}", "b".repeat(3000));
    let r = curl_with(&t.url("/echo"), &["-H".into(), big]);
    assert_eq!(r.status, 431, "{}", r.text());
    assert!(
        r.text()
            .contains("field section larger than the limit of 2048 bytes"),
        "{}",
        r.text()
    );
    assert_eq!(
        backend.requests(),
        0,
        "a refused request reached the backend"
    );
    // Counted by the limit that refused, on the egress that applied it.
    let hits = |limit| t.egress.metric("tng_limit_hits_total", &[("limit", limit)]);
    assert_eq!(hits("max_headers"), 1.0);
    assert_eq!(hits("max_header_bytes"), 1.0);
    assert_still_serving(&t, "inner heads over the limits");
}

#[test]
fn slow_request_heads_get_408_and_silent_connections_are_closed() {
    let backend = Backend::start();
    let short = limits(json!({"header_read_timeout": 1}));
    let t = tunnel(backend.addr(), short.clone(), short);
    for (who, addr, tng) in [
        ("ingress", t.ingress_addr(), &t.ingress),
        ("egress", t.egress_addr(), &t.egress),
    ] {
        // Slowloris: a head that never completes.
        let mut slow = connect(&addr);
        std::io::Write::write_all(&mut slow, b"GET /echo HTTP/1.1\r\nhost: x\r\nx-slow: ").unwrap();
        let (sent, took) = wait_closed(&mut slow, GENEROUS);
        let text = String::from_utf8_lossy(&sent);
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{who}: {text:?}"
        );
        assert!(
            took >= Duration::from_millis(500),
            "{who}: closed after {took:?}"
        );
        tng.wait_for_log("did not complete its request head in time", GENEROUS);
        // A connection that never sends anything is closed without a response.
        let mut silent = connect(&addr);
        let (sent, _) = wait_closed(&mut silent, GENEROUS);
        assert!(
            sent.is_empty(),
            "{who}: {:?}",
            String::from_utf8_lossy(&sent)
        );
        tng.wait_for_log("client sent no request in time", GENEROUS);
        assert_eq!(
            tng.metric("tng_limit_hits_total", &[("limit", "header_read_timeout")]),
            2.0,
            "{who}"
        );
    }
    assert_still_serving(&t, "slow heads");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn stalled_request_bodies_get_408_and_slow_steady_ones_pass() {
    let backend = Backend::start();
    // The egress waits longer than the ingress, so each 408 below has one author.
    let t = tunnel(
        backend.addr(),
        limits(json!({"body_read_timeout": 3})),
        limits(json!({"body_read_timeout": 1})),
    );
    let ingress_request =
        b"POST /sink HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789".to_vec();
    // A body that stops after 10 of its 100 bytes, through the ingress (the service waits for
    // the whole body before it answers): the ingress's own 408.
    let (text, took) = stall(&t.ingress_addr(), &ingress_request);
    assert_body_timeout(&text, "RequestBodyTimeout", 1, "ingress");
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    t.ingress.wait_for_log("RequestBodyTimeout (408)", GENEROUS);
    let body_hits =
        |tng: &Tng| tng.metric("tng_limit_hits_total", &[("limit", "body_read_timeout")]);
    assert_eq!(body_hits(&t.ingress), 1.0);

    // Straight to the egress, a tunnel request whose metadata frame never completes.
    let egress = t.egress_addr();
    let mut tunnel_request = format!(
        "POST / HTTP/1.1\r\nhost: {egress}\r\nx-tng-ohttp-api: /tng/tunnel\r\n\
         content-type: message/ohttp-chunked-req\r\ncontent-length: 100\r\n\r\n"
    )
    .into_bytes();
    tunnel_request.extend_from_slice(&[0, 0, 0, 10, 1, 2]);
    let (text, took) = stall(&egress, &tunnel_request);
    assert_body_timeout(&text, "RequestBodyTimeout", 3, "egress");
    assert!(
        took >= Duration::from_millis(2900),
        "answered after {took:?}"
    );
    t.egress.wait_for_log("RequestBodyTimeout (408)", GENEROUS);
    assert_eq!(body_hits(&t.egress), 1.0);
    assert_eq!(
        body_hits(&t.ingress),
        1.0,
        "the egress's 408 is not the ingress's hit"
    );

    // A slow but steady body — a byte every 400 ms, 2.4 s in all — is not stalled.
    let mut steady = connect(&t.ingress_addr());
    std::io::Write::write_all(
        &mut steady,
        b"POST /sink HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\n",
    )
    .unwrap();
    for byte in b"steady" {
        pause(Duration::from_millis(400));
        std::io::Write::write_all(&mut steady, &[*byte]).unwrap();
    }
    let r = tng_e2e::hardening::read_response(&mut steady, GENEROUS);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["bytes"], 6);
    assert_still_serving(&t, "stalled bodies");
    drop(t);

    // An ingress without the limit relays the egress's 408 as a 408.
    let t = tunnel(
        backend.addr(),
        limits(json!({"body_read_timeout": 1})),
        limits(json!({"body_read_timeout": 0})),
    );
    let (text, _) = stall(&t.ingress_addr(), &ingress_request);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "relayed: {text:?}"
    );
    assert!(
        text.contains("\"code\":\"HttpCipherTextBadResponse\""),
        "relayed: {text:?}"
    );
    assert!(
        text.contains("the egress answered 408 Request Timeout (RequestBodyTimeout)"),
        "{text:?}"
    );
    assert_still_serving(&t, "a relayed 408");
}

/// Sends `request` (whose body never completes) and returns what the server sent before it
/// closed the connection, and when it closed.
fn stall(addr: &str, request: &[u8]) -> (String, Duration) {
    let mut conn = connect(addr);
    std::io::Write::write_all(&mut conn, request).unwrap();
    let (sent, took) = wait_closed(&mut conn, GENEROUS);
    (String::from_utf8_lossy(&sent).into_owned(), took)
}

fn assert_body_timeout(text: &str, code: &str, secs: u64, who: &str) {
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{who}: {text:?}"
    );
    assert!(
        text.contains(&format!("\"code\":\"{code}\"")),
        "{who}: {text:?}"
    );
    let detail =
        format!("the client sent no request body bytes for {secs}s (limits.body_read_timeout)");
    assert!(text.contains(&detail), "{who}: {text:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed_but_busy_ones_are_not() {
    let backend = Backend::start();
    let idle = limits(json!({"idle_timeout": 2}));
    let t = tunnel(backend.addr(), json!({}), idle);
    let addr = t.ingress_addr();
    let mut conn = connect(&addr);
    let r = exchange(
        &mut conn,
        b"GET /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi",
        GENEROUS,
    );
    assert_eq!((r.status, r.text()), (200, "hi".to_string()));
    let (sent, took) = wait_closed(&mut conn, GENEROUS);
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
    assert!(took >= Duration::from_secs(1), "closed after {took:?}");
    t.ingress
        .wait_for_log("idle keep-alive connection closed", GENEROUS);
    assert_eq!(
        t.ingress
            .metric("tng_limit_hits_total", &[("limit", "idle_timeout")]),
        1.0
    );

    // A request that takes longer than the idle timeout is not idle.
    let mut busy = connect(&addr);
    let r = exchange(
        &mut busy,
        b"GET /slow?ms=4000 HTTP/1.1\r\nhost: x\r\n\r\n",
        GENEROUS,
    );
    assert_eq!((r.status, r.text()), (200, "slow 4000 ms\n".to_string()));
    // Reused after the slow response: keep-alive still works.
    let r = exchange(
        &mut busy,
        b"GET /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nagain",
        GENEROUS,
    );
    assert_eq!((r.status, r.text()), (200, "again".to_string()));
}

#[test]
fn connections_beyond_max_connections_get_503_and_other_listeners_keep_serving() {
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(backend.addr(), json!({}));
    let (a, b) = (free_port(), free_port());
    let out = json!({"host": "127.0.0.1", "port": egress_port});
    let ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [{
            "mapping": {"rules": [
                {"in": {"host": "127.0.0.1", "port": a}, "out": out},
                {"in": {"host": "127.0.0.1", "port": b}, "out": out}
            ]},
            "ohttp": {},
            "no_ra": true,
            "limits": {"max_connections": 2}
        }]}),
    );
    let url = |port: u16| format!("http://127.0.0.1:{port}/echo");
    let held: Vec<_> = (0..2).map(|_| connect(&format!("127.0.0.1:{a}"))).collect();
    pause(Duration::from_millis(200));
    let r = curl_status(&["-d", "x", &url(a)]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "too many connections; retry later\n");
    ingress.wait_for_log("connection limit reached", GENEROUS);
    // Many more refusals do not add a log line each (rate-limited) and do not block.
    for _ in 0..5 {
        assert_eq!(curl_status(&["-d", "x", &url(a)]).status, 503);
    }
    let lines = ingress
        .log()
        .lines()
        .filter(|l| l.contains("connection limit reached"))
        .count();
    assert_eq!(lines, 1, "the overload line is rate-limited");
    // Each refusal is counted, although the log line is not repeated.
    assert_eq!(
        ingress.metric("tng_limit_hits_total", &[("limit", "max_connections")]),
        6.0
    );
    // The other listener has its own budget.
    let r = curl_status(&["-d", "via b", &url(b)]);
    assert_eq!((r.status, r.text()), (200, "via b".to_string()));
    // Freed slots are reused.
    drop(held);
    let deadline = std::time::Instant::now() + GENEROUS;
    loop {
        let r = curl_status(&["-d", "via a", &url(a)]);
        if r.status == 200 {
            assert_eq!(r.text(), "via a");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listener a never recovered"
        );
        pause(Duration::from_millis(100));
    }
    drop(egress);
}

#[test]
fn h2_settings_carry_the_stream_and_header_limits() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"max_concurrent_streams": 7, "max_header_bytes": 9000})),
    );
    let settings = h2_server_settings(&t.ingress_addr());
    assert!(
        settings.contains(&(3, 7)),
        "MAX_CONCURRENT_STREAMS: {settings:?}"
    );
    assert!(
        settings.contains(&(6, 9000)),
        "MAX_HEADER_LIST_SIZE: {settings:?}"
    );
    let settings = h2_server_settings(&t.egress_addr());
    assert!(
        settings.contains(&(3, 256)),
        "default on the egress: {settings:?}"
    );
    let r = curl_status(&["--http2-prior-knowledge", "-d", "h2", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "h2".to_string()));
}

#[test]
fn an_h2_stream_taking_the_last_slot_is_counted() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"max_concurrent_streams": 2})),
    );
    let hits = || {
        t.ingress.metric(
            "tng_limit_hits_total",
            &[("limit", "max_concurrent_streams")],
        )
    };
    // One stream at a time never reaches the limit.
    let statuses = h2_concurrent_gets(&t.ingress_addr(), "/slow?ms=10", &["/slow?ms=10"]);
    assert_eq!(statuses, [200]);
    assert_eq!(hits(), 0.0);
    // Three streams, two allowed: the second takes the last slot; the third waits in the
    // client until the short one ends and takes that slot while the long one still runs.
    let statuses = h2_concurrent_gets(
        &t.ingress_addr(),
        "/slow?ms=10",
        &["/slow?ms=1500", "/slow?ms=300", "/slow?ms=10"],
    );
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(hits(), 2.0);
    assert_still_serving(&t, "streams at the limit");
}

#[test]
fn metadata_and_chunk_limits() {
    let backend = Backend::start();
    // Metadata declared larger than the egress allows: refused from its length.
    let (egress, port) = launch_egress(backend.addr(), limits(json!({"max_metadata_bytes": 1024})));
    let addr = format!("127.0.0.1:{port}");
    let mut body = 2000u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0u8; 100]);
    let r = raw_http(
        &addr,
        &build_post(
            "/",
            &addr,
            &[
                ("x-tng-ohttp-api", "/tng/tunnel"),
                ("content-type", "message/ohttp-chunked-req"),
            ],
            &body,
        ),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["code"], "MetadataTooLong");
    egress.wait_for_log("MetadataTooLong", GENEROUS);
    drop(egress);

    // The egress refuses request chunks over its limit (400); the client sees a 502.
    let t = tunnel(
        backend.addr(),
        limits(json!({"max_chunk_bytes": 17})),
        json!({}),
    );
    let r = curl_status(&["-d", "hello", &t.url("/echo")]);
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], "HttpCipherTextBadResponse");
    let message = v["message"].as_str().unwrap_or_default();
    assert_eq!(
        message, "the egress answered 400 Bad Request (ChunkTooLarge)",
        "{message}"
    );
    let line = t.egress.wait_for_log("ChunkTooLarge", GENEROUS);
    assert!(line.contains("exceeds the maximum of 17 bytes"), "{line}");
    assert_eq!(backend.requests(), 0);
    drop(t);

    // The ingress refuses response chunks over its limit: 502.
    let t = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"max_chunk_bytes": 17})),
    );
    let r = curl_status(&["-d", "hello", &t.url("/echo")]);
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], "OhttpError");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("exceeds the maximum of 17 bytes"),
        "{message}"
    );
    t.ingress
        .wait_for_log("exceeds the maximum of 17 bytes", GENEROUS);
}

#[test]
fn response_timeouts_give_504() {
    let backend = Backend::start();
    // The service is slower than the egress allows.
    let t = tunnel(
        backend.addr(),
        limits(json!({"response_timeout": 1})),
        json!({}),
    );
    let r = curl_status(&[&t.url("/slow?ms=5000")]);
    assert_eq!(r.status, 504, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], "HttpCipherTextBadResponse");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the egress answered 504 Gateway Timeout"),
        "{message}"
    );
    assert!(message.contains("(UpstreamResponseTimeout)"), "{message}");
    let line = t.egress.wait_for_log("UpstreamResponseTimeout", GENEROUS);
    assert!(line.contains("sent no response within 1s"), "{line}");
    let timeouts = [("limit", "response_timeout")];
    assert_eq!(t.egress.metric("tng_limit_hits_total", &timeouts), 1.0);
    assert_still_serving(&t, "a service timeout");
    drop(t);

    // The egress (here: its service) is slower than the ingress allows.
    let t = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"response_timeout": 1})),
    );
    let r = curl_status(&[&t.url("/slow?ms=5000")]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["code"], "EgressResponseTimeout");
    t.ingress.wait_for_log("EgressResponseTimeout", GENEROUS);
    assert_eq!(t.ingress.metric("tng_limit_hits_total", &timeouts), 1.0);
    assert_still_serving(&t, "an egress timeout");
    // 0 disables the limit.
    let t0 = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"response_timeout": 0})),
    );
    let r = curl_status(&[&t0.url("/slow?ms=1500")]);
    assert_eq!((r.status, r.text()), (200, "slow 1500 ms\n".to_string()));
}

#[test]
fn keep_alive_survives_within_limits() {
    // Sanity: a connection reused for many requests is neither idle nor slow.
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({}),
        limits(json!({"idle_timeout": 5, "header_read_timeout": 5})),
    );
    let mut conn = connect(&t.ingress_addr());
    for i in 0..20 {
        let body = format!("n{i}");
        let req = format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = exchange(&mut conn, req.as_bytes(), GENEROUS);
        assert_eq!((r.status, r.text()), (200, body));
    }
    assert!(stays_open(&mut conn, Duration::from_millis(500)));
}
