//! What every topology must carry, each check with its exact expected outcome.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use tng_e2e::client::H1Conn;
use tng_e2e::net::find;
use tng_e2e::*;

use super::apps::{echo_exchange, echo_via, noise, sha256_hex, READ_TIMEOUT};
use super::pair::Pair;

/// How much each check moves: the full set for the main peers, a smoke for older ones.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub download: u64,
    pub upload: usize,
    pub raw: usize,
}

pub const FULL: Sizes = Sizes {
    download: 6 << 20,
    upload: (4 << 20) + 13,
    raw: (3 << 20) + 7,
};

pub const SMOKE: Sizes = Sizes {
    download: 1 << 20,
    upload: (1 << 20) + 5,
    raw: 512 << 10,
};

/// Everything below, in order.
pub fn all(p: &Pair, sizes: Sizes) {
    let started = Instant::now();
    get_and_download(p, sizes.download);
    upload(p, sizes.upload);
    sse_chunk_by_chunk(p);
    raw_tcp(p, sizes.raw);
    concurrent(p, 50);
    println!(
        "[rats-tls] {}: all checks ({sizes:?}) passed in {:.1} s",
        p.name,
        started.elapsed().as_secs_f64()
    );
}

/// A small GET with its exact body, then a multi-MiB download checked byte by byte.
pub fn get_and_download(p: &Pair, n: u64) {
    let r = curl_status(&[&p.url("/hello/rats?q=1")]);
    assert_eq!(r.status, 200, "GET: {}\n{}", r.text(), p.logs());
    assert_eq!(r.text(), "hello from backend: GET /hello/rats");
    for query in [
        format!("n={n}"),
        format!("n={}&te=chunked&chunk=4099", n + 1),
    ] {
        let r = curl_status(&[&p.url(&format!("/bytes?{query}"))]);
        assert_eq!(r.status, 200, "/bytes?{query}\n{}", p.logs());
        let mut check = PatternChecker::new();
        check.feed(&r.body);
        let want = if query.contains("te=chunked") {
            n + 1
        } else {
            n
        };
        assert_eq!(check.len(), want, "/bytes?{query}: length\n{}", p.logs());
        assert_eq!(check.first_mismatch(), None, "/bytes?{query}: content");
    }
}

/// A multi-MiB POST echoed back byte-exact (Content-Length), and a chunked one hashed by
/// the backend.
pub fn upload(p: &Pair, len: usize) {
    let dir = test_dir("rats-tls-upload");
    let body = noise(len as u64, len);
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).expect("write body");
    let at_file = format!("@{}", file.display());
    let r = curl_status(&[
        "-X",
        "POST",
        "--data-binary",
        &at_file,
        "-H",
        "content-type: application/octet-stream",
        &p.url("/echo"),
    ]);
    assert_eq!(r.status, 200, "POST /echo\n{}", p.logs());
    assert_eq!(r.body.len(), len, "POST /echo: echoed length\n{}", p.logs());
    assert!(r.body == body, "POST /echo: echoed bytes differ");
    let r = curl_status(&[
        "-X",
        "POST",
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        &at_file,
        &p.url("/sink"),
    ]);
    assert_eq!(r.status, 200, "POST /sink: {}\n{}", r.text(), p.logs());
    assert_eq!(
        r.json(),
        serde_json::json!({"bytes": len, "sha256": sha256_hex(&body)})
    );
    let _ = std::fs::remove_file(&file);
}

/// Five SSE events, each released by the backend only after the client acknowledged the
/// previous one: each must cross the tunnel on its own, before the stream ends.
pub fn sse_chunk_by_chunk(p: &Pair) {
    let id = format!("rats-{}", p.http);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = format!("127.0.0.1:{}", p.http);
    let ack_base = p.backend.url("/sse-ack");
    rt.block_on(async {
        let mut conn = H1Conn::connect(&addr)
            .await
            .expect("connect to the ingress");
        let resp = conn
            .send(
                http::Request::get(format!("/sse?id={id}&n=5"))
                    .body(Default::default())
                    .unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("SSE request: {e}\n{}", p.logs()));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body();
        let mut seen = String::new();
        for i in 0..5u64 {
            let expected = format!("data: event-{i}\n\n");
            while !seen.ends_with(&expected) {
                let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "event {i} not received within 10 s; got {seen:?}\n{}",
                            p.logs()
                        )
                    })
                    .unwrap_or_else(|| panic!("stream ended before event {i}: {seen:?}"))
                    .expect("body error");
                if let Some(data) = frame.data_ref() {
                    seen.push_str(std::str::from_utf8(data).unwrap());
                }
                assert!(seen.len() <= 5 * 16, "unexpected data {seen:?}");
            }
            let url = format!("{ack_base}?id={id}&i={i}");
            tokio::task::spawn_blocking(move || assert_eq!(http_get(&url).0, 200))
                .await
                .unwrap();
        }
        #[allow(clippy::disallowed_methods)]
        let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .expect("stream did not end after the last ack")
            .unwrap()
            .to_bytes();
        assert_eq!(rest, Bytes::new());
        let expected: String = (0..5).map(|i| format!("data: event-{i}\n\n")).collect();
        assert_eq!(seen, expected);
    });
}

/// Random bytes through the echo service: the client half-closes after the last byte and
/// still gets every byte back, followed by EOF.
pub fn raw_tcp(p: &Pair, len: usize) {
    let data = noise(0xec40 + len as u64, len);
    let back = echo_via(p.raw, &data).unwrap_or_else(|e| panic!("raw echo: {e}\n{}", p.logs()));
    assert_eq!(back.len(), data.len(), "raw echo length\n{}", p.logs());
    assert!(back == data, "raw echo bytes differ");
    // A connection that half-closes at once, before sending anything, ends cleanly.
    let back = echo_via(p.raw, &[]).unwrap_or_else(|e| panic!("empty echo: {e}"));
    assert!(back.is_empty(), "{back:?}");
}

/// `n` connections open at once (all connected before any sends a byte), half HTTP with
/// distinct exact bodies, half raw echo.
pub fn concurrent(p: &Pair, n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    let mut workers = Vec::new();
    for i in 0..n {
        let barrier = barrier.clone();
        let (http, raw) = (p.http, p.raw);
        workers.push(thread::spawn(move || -> Result<(), String> {
            if i % 2 == 0 {
                let len = 20_000 + i * 997;
                // Every worker reaches the barrier, also one whose connect failed.
                let s = TcpStream::connect(("127.0.0.1", http));
                barrier.wait();
                let mut s = s.map_err(|e| format!("{i}: connect: {e}"))?;
                s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                let req =
                    format!("GET /bytes?n={len} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
                let mut data = Vec::new();
                s.read_to_end(&mut data)
                    .map_err(|e| format!("{i}: read after {} bytes: {e}", data.len()))?;
                let split = find(&data, b"\r\n\r\n").ok_or(format!("{i}: no response head"))?;
                let head = String::from_utf8_lossy(&data[..split]);
                if !head.starts_with("HTTP/1.1 200") {
                    return Err(format!("{i}: {head}"));
                }
                if data[split + 4..] != pattern_bytes(0, len)[..] {
                    return Err(format!(
                        "{i}: body differs ({} bytes)",
                        data.len() - split - 4
                    ));
                }
            } else {
                let data = noise(i as u64, 65_536 + i);
                let s = TcpStream::connect(("127.0.0.1", raw));
                barrier.wait();
                let s = s.map_err(|e| format!("{i}: connect: {e}"))?;
                let back = echo_exchange(s, &data).map_err(|e| format!("{i}: {e}"))?;
                if back != data {
                    return Err(format!("{i}: echo differs ({} bytes back)", back.len()));
                }
            }
            Ok(())
        }));
    }
    let failures: Vec<String> = workers
        .into_iter()
        .filter_map(|w| w.join().expect("worker").err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {n} concurrent connections failed: {failures:?}\n{}",
        failures.len(),
        p.logs()
    );
}
