//! The devkit backend and the harness on their own (no tng): if these fail, tunnel test
//! failures are not about tng.

use std::time::Duration;

use http_body_util::BodyExt;
use tng_e2e::client::H1Conn;
use tng_e2e::*;

#[test]
fn echo_reflects_method_uri_headers_and_body() {
    let b = Backend::start();
    let body = test_dir("echo").join("body.bin");
    std::fs::write(&body, b"hello\r\n\0world").unwrap();
    let r = curl_status(&[
        "-X",
        "PUT",
        "-H",
        "x-foo: bar",
        "-H",
        "content-type: text/x",
        "-H",
        "x-set-x-tag: t1",
        "--data-binary",
        &format!("@{}", body.display()),
        &b.url("/echo?a=1&b"),
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\r\n\0world");
    assert_eq!(r.header("x-echo-method"), Some("PUT"));
    assert_eq!(r.header("x-echo-uri"), Some("/echo?a=1&b"));
    assert_eq!(r.header("x-echo-host"), Some(b.addr()));
    assert_eq!(r.header("x-echo-version"), Some("HTTP/1.1"));
    assert_eq!(r.header("x-echo-h-x-foo"), Some("bar"));
    assert_eq!(r.header("x-tag"), Some("t1"));
    assert_eq!(r.header("content-type"), Some("text/x"));
    let r = curl_status(&["--http2-prior-knowledge", "-d", "h2", &b.url("/echo")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"h2"[..]));
    assert_eq!(r.header("x-echo-version"), Some("HTTP/2.0"));
}

#[test]
fn bytes_sink_status_headers_default_and_stats() {
    let b = Backend::start();
    let r = curl_status(&[&b.url("/bytes?n=100000&chunk=777")]);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert!(r.body == pattern_bytes(0, 100_000));
    let r = curl_status(&[&b.url("/bytes?n=5000&te=chunked")]);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body == pattern_bytes(0, 5000));

    let mut checker = PatternChecker::new();
    checker.feed(&pattern_bytes(0, 300_000));
    assert_eq!(checker.first_mismatch(), None);
    assert_eq!(checker.sha256(), pattern_sha256(300_000));

    let dir = test_dir("sink");
    let f = dir.join("p.bin");
    std::fs::write(&f, pattern_bytes(0, 300_000)).unwrap();
    let r = curl_status(&[
        "-T",
        &f.display().to_string(),
        "-X",
        "POST",
        &b.url("/sink"),
    ]);
    assert_eq!(
        r.json(),
        serde_json::json!({"bytes": 300_000, "sha256": pattern_sha256(300_000)})
    );

    let r = curl_status(&[&b.url("/status?code=418")]);
    assert_eq!((r.status, r.text()), (418, "status 418\n".to_string()));
    let r = curl_status(&["-H", "x-a: 1", "-H", "x-a: 2", &b.url("/headers")]);
    assert_eq!(r.json()["x-a"], "1, 2");
    let r = curl_status(&["-X", "DELETE", &b.url("/any/where?x")]);
    assert_eq!(r.text(), "hello from backend: DELETE /any/where");
    let started = std::time::Instant::now();
    assert_eq!(curl_status(&[&b.url("/slow?ms=300")]).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(b.requests(), 7);
}

#[test]
fn sse_waits_for_acks_even_through_a_relay() {
    let b = Backend::start();
    let relay = Relay::start(b.addr());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = H1Conn::connect(&format!("127.0.0.1:{}", relay.port()))
            .await
            .unwrap();
        let resp = conn
            .send(
                http::Request::get("/sse?id=self&n=3")
                    .body(Default::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-cache");
        let mut body = resp.into_body();
        for i in 0..3u64 {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("event in time")
                .unwrap()
                .unwrap();
            assert_eq!(
                frame.data_ref().unwrap(),
                format!("data: event-{i}\n\n").as_bytes()
            );
            // Without an ack, nothing more comes.
            assert!(
                tokio::time::timeout(Duration::from_millis(300), body.frame())
                    .await
                    .is_err()
            );
            let url = b.url(&format!("/sse-ack?id=self&i={i}"));
            tokio::task::spawn_blocking(move || assert_eq!(http_get(&url).0, 200))
                .await
                .unwrap();
        }
        let end = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("end in time");
        assert!(end.is_none(), "stream should end after the last ack");
    });
}

#[test]
fn sigterm_stops_the_backend_cleanly() {
    let mut b = Backend::start();
    let status = b.proc.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", b.proc.log());
}
