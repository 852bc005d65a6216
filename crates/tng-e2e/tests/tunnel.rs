//! curl → ingress → egress → backend on loopback: bodies, statuses, headers, h2c, upgrades,
//! SSE, concurrency and the control interface.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tng_e2e::client::H1Conn;
use tng_e2e::*;

fn unique_bytes(seed: u8, len: usize) -> Vec<u8> {
    // Includes every byte value (CR, LF, NUL, 0x80+) to catch any text-mode mangling.
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn get_post_and_status_are_byte_identical() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let before = backend.requests();

    let r = curl_status(&[&t.url("/hello/world?x=1")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from backend: GET /hello/world");

    let dir = test_dir("post-body");
    let body = unique_bytes(7, 300_000);
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let at_file = format!("@{}", file.display());

    // Content-Length request body.
    let r = curl_status(&[
        "-X",
        "POST",
        "--data-binary",
        &at_file,
        "-H",
        "content-type: application/x-test",
        "-H",
        "x-custom: abc",
        &t.url("/echo?q=1&r=2"),
    ]);
    assert_eq!(r.status, 200);
    assert!(
        r.body == body,
        "echoed POST body differs ({} bytes back)",
        r.body.len()
    );
    assert_eq!(r.header("x-echo-method"), Some("POST"));
    assert_eq!(r.header("x-echo-uri"), Some("/echo?q=1&r=2"));
    assert_eq!(r.header("x-echo-h-x-custom"), Some("abc"));
    assert_eq!(r.header("content-type"), Some("application/x-test"));

    // Chunked request body.
    let r = curl_status(&[
        "-X",
        "PUT",
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        &at_file,
        &t.url("/echo"),
    ]);
    assert_eq!(r.status, 200);
    assert!(
        r.body == body,
        "echoed chunked PUT differs ({} bytes back)",
        r.body.len()
    );
    assert_eq!(r.header("x-echo-method"), Some("PUT"));

    // Statuses and bodies pass through unchanged, including errors of the backend.
    for code in ["201", "404", "500", "503"] {
        let r = curl_status(&[&t.url(&format!("/status?code={code}"))]);
        assert_eq!(r.status.to_string(), code);
        assert_eq!(r.text(), format!("status {code}\n"));
    }

    // A Content-Length and a chunked download, both exact.
    for q in ["n=200000&chunk=1000", "n=200000&chunk=4097&te=chunked"] {
        let r = curl_status(&[&t.url(&format!("/bytes?{q}"))]);
        assert_eq!(r.status, 200);
        assert!(r.body == pattern_bytes(0, 200_000), "/bytes?{q} differs");
    }

    assert_eq!(backend.requests() - before, 1 + 2 + 4 + 2);
}

#[test]
fn keep_alive_connection_is_reused_by_curl() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    // Three URLs in one curl run share one connection when keep-alive works.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
        &t.url("/a"),
        &t.url("/b"),
        &t.url("/c"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 1\n200 0\n200 0\n"
    );
}

#[test]
fn h2c_prior_knowledge_get_and_post() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let r = curl_status(&[
        "--http2-prior-knowledge",
        &t.url("/bytes?n=123457&chunk=999"),
    ]);
    assert_eq!(r.status, 200);
    assert!(r.body == pattern_bytes(0, 123_457), "h2c GET body differs");

    let body = unique_bytes(3, 70_001);
    let dir = test_dir("h2c");
    let file = dir.join("b.bin");
    std::fs::write(&file, &body).unwrap();
    let out = curl(&[
        "--http2-prior-knowledge",
        "--data-binary",
        &format!("@{}", file.display()),
        "-o",
        "-",
        "-w",
        "%{http_version}",
        &t.url("/echo"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (got, version) = out.stdout.split_at(out.stdout.len() - 1);
    assert_eq!(version, b"2", "client leg was not HTTP/2");
    assert!(
        got == body.as_slice(),
        "h2c POST body differs ({} bytes)",
        got.len()
    );
}

#[test]
fn upgrade_requests_get_501() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let before = backend.requests();
    let r = curl_status(&[
        "-H",
        "connection: Upgrade",
        "-H",
        "upgrade: websocket",
        "-H",
        "sec-websocket-version: 13",
        "-H",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        &t.url("/ws"),
    ]);
    assert_eq!(r.status, 501, "body: {}", r.text());
    assert_eq!(r.json()["code"], "UpgradeNotSupported");
    assert!(r.json()["message"].is_string());
    assert_eq!(
        backend.requests(),
        before,
        "an upgrade request reached the backend"
    );
    // The ingress keeps serving.
    assert_eq!(
        curl_status(&[&t.url("/after")]).text(),
        "hello from backend: GET /after"
    );
}

#[test]
fn sse_events_arrive_one_by_one() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = H1Conn::connect(&t.ingress_addr()).await.unwrap();
        let resp = conn
            .send(
                http::Request::get("/sse?id=sse-e2e&n=5")
                    .body(Default::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body();
        let mut seen = String::new();
        for i in 0..5u64 {
            let expected = format!("data: event-{i}\n\n");
            // The backend sends event i+1 only after this ack, so each event must come
            // through on its own: a buffering hop would stall here until the timeout.
            while !seen.ends_with(&expected) {
                let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                    .await
                    .unwrap_or_else(|_| panic!("event {i} not received within 10 s; got {seen:?}"))
                    .expect("stream ended early")
                    .expect("body error");
                if let Some(data) = frame.data_ref() {
                    seen.push_str(std::str::from_utf8(data).unwrap());
                }
                assert!(seen.len() <= 5 * 16, "unexpected data {seen:?}");
            }
            let url = backend.url(&format!("/sse-ack?id=sse-e2e&i={i}"));
            tokio::task::spawn_blocking(move || assert_eq!(http_get(&url).0, 200))
                .await
                .unwrap();
        }
        // After the last ack the stream must end with no further data.
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

#[test]
fn two_hundred_concurrent_keep_alive_clients() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let before = backend.requests();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = t.ingress_addr();
    let failures = rt.block_on(async move {
        let mut tasks = Vec::new();
        for c in 0..200u32 {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = H1Conn::connect(&addr)
                    .await
                    .map_err(|e| format!("{c}: {e}"))?;
                for j in 0..5u32 {
                    if j % 2 == 0 {
                        let body = format!("client-{c}-req-{j}-").repeat(50 + c as usize);
                        let r = conn
                            .post("/echo", body.clone())
                            .await
                            .map_err(|e| format!("{c}/{j}: {e}"))?;
                        if r.status != 200 || r.body != body.as_bytes() {
                            return Err(format!(
                                "{c}/{j}: status {} body {} bytes",
                                r.status,
                                r.body.len()
                            ));
                        }
                    } else {
                        let path = format!("/get-{c}-{j}");
                        let r = conn.get(&path).await.map_err(|e| format!("{c}/{j}: {e}"))?;
                        let want = format!("hello from backend: GET {path}");
                        if r.status != 200 || r.body != want.as_bytes() {
                            return Err(format!("{c}/{j}: status {} body {:?}", r.status, r.body));
                        }
                    }
                }
                Ok::<(), String>(())
            }));
        }
        let mut failures = Vec::new();
        for task in tasks {
            match tokio::time::timeout(Duration::from_secs(120), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failures.push(e),
                Ok(Err(e)) => failures.push(format!("task panicked: {e}")),
                Err(_) => failures.push("task timed out".into()),
            }
        }
        failures
    });
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(backend.requests() - before, 1000);
}

#[test]
fn control_interface_reports_health_and_keys() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    for tng in [&t.egress, &t.ingress] {
        assert_eq!(
            http_get(&format!("{}/livez", tng.control_url())),
            (200, "ok".to_string())
        );
        assert_eq!(
            http_get(&format!("{}/readyz", tng.control_url())),
            (200, "ok".to_string())
        );
    }
    assert_eq!(t.egress.status_json("/status/"), json!(["egress"]));
    assert_eq!(t.ingress.status_json("/status/"), json!(["ingress"]));

    let keys = t.egress.status_json("/status/egress/0/ohttp/keys");
    assert_eq!(keys["key_manager_type"], "self_generated");
    let local = keys["local_keys"].as_array().expect("local_keys array");
    assert_eq!(local.len(), 1, "{keys}");
    assert_eq!(local[0]["status"], "Active");
    assert_eq!(local[0]["key_id"], 0);
    let pk = local[0]["public_key"]
        .as_str()
        .expect("public_key")
        .to_string();
    assert_eq!(pk.len(), 64, "X25519 public key as hex: {pk}");

    // The ingress fetches the key config on first use.
    assert_eq!(curl_status(&[&t.url("/x")]).status, 200);
    let servers = t.ingress.status_json("/status/ingress/0/ohttp/keys");
    let list = servers["servers"].as_array().expect("servers array");
    assert_eq!(list.len(), 1, "{servers}");
    assert_eq!(
        list[0]["url"],
        format!("http://127.0.0.1:{}/", t.egress_port)
    );
    assert_eq!(list[0]["server_public_key"], pk.as_str());
}
