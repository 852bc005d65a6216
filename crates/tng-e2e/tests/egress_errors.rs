//! The egress facing non-TNG and malformed traffic directly: the documented status and error
//! code, a warning in its log, and it keeps serving valid tunnel traffic afterwards.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tng_e2e::net::build_post;
use tng_e2e::*;

fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// `u32 length ‖ Metadata{no_auth, key_config_hint{public_key}}` as in spec §4.2.
fn metadata_frame(public_key: &[u8]) -> Vec<u8> {
    let mut meta = vec![
        0x0a,
        0x00,
        0x1a,
        (public_key.len() + 2) as u8,
        0x0a,
        public_key.len() as u8,
    ];
    meta.extend_from_slice(public_key);
    let mut frame = (meta.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&meta);
    frame
}

fn tunnel_post(egress: &str, content_type: &str, body: &[u8]) -> RawResponse {
    raw_http(
        egress,
        &build_post(
            "/",
            egress,
            &[
                ("x-tng-ohttp-api", "/tng/tunnel"),
                ("content-type", content_type),
            ],
            body,
        ),
    )
}

struct Fixture {
    backend: Backend,
    t: Tunnel,
    served: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let backend = Backend::start();
        let t = tunnel(backend.addr(), json!({}), json!({}));
        Fixture {
            backend,
            t,
            served: 0,
        }
    }

    /// Asserts status and JSON code, a new WARN/ERROR line in the egress log (when
    /// `needs_log`: malformed tunnel traffic, not mere plaintext probes), and that a valid
    /// request through the ingress still works.
    fn check(
        &mut self,
        what: &str,
        before_log: Option<usize>,
        r: RawResponse,
        status: u16,
        code: &str,
    ) {
        assert_eq!(r.status, status, "{what}: body {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        let v = r.json();
        assert_eq!(v["code"], code, "{what}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
        if let Some(before_log) = before_log {
            pause(Duration::from_millis(100));
            let log = self.t.egress.log();
            let new = &log[before_log.min(log.len())..];
            let line = new
                .lines()
                .find(|l| l.contains("WARN") || l.contains("ERROR"));
            println!("[{what}] {status} {code}; log: {line:?}");
            assert!(
                line.is_some(),
                "{what}: no WARN/ERROR log line; new log:\n{new}"
            );
        }
        self.served += 1;
        let body = format!("still serving after {what}");
        let ok = curl_status(&["-d", &body, &self.t.url("/echo")]);
        assert_eq!(
            (ok.status, ok.text()),
            (200, body),
            "{what}: tunnel broken afterwards"
        );
    }
}

#[test]
fn non_tng_requests_are_rejected() {
    let mut f = Fixture::new();
    let e = f.t.egress_addr();
    let r = raw_http(
        &e,
        b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    f.check("no api header", None, r, 403, "RejectNonTngRequest");
    let r = raw_http(
        &e,
        &build_post("/", &e, &[("x-tng-ohttp-api", "/tng/nope")], b"{}"),
    );
    f.check("bad api header", None, r, 400, "InvalidOhttpApiHeaderValue");
    assert_eq!(
        f.backend.requests(),
        f.served as u64,
        "a rejected request reached the backend"
    );
}

#[test]
fn malformed_tunnel_bodies_get_documented_statuses() {
    let mut f = Fixture::new();
    let e = f.t.egress_addr();
    // Make sure the egress has handed out its key (and the ingress holds it).
    assert_eq!(curl_status(&[&f.t.url("/warm")]).status, 200);
    f.served += 1;
    let pk_hex =
        f.t.egress
            .egress_public_keys(0)
            .into_iter()
            .next()
            .expect("an egress key");
    let pk = hex::decode(&pk_hex).unwrap();
    let ct = "message/ohttp-chunked-req";

    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "wrong content-type",
            "application/octet-stream".into(),
            metadata_frame(&pk),
            400,
            "InvalidOHttpRequest",
        ),
        (
            "short length prefix",
            ct.into(),
            vec![0, 0],
            400,
            "MetadataReadError",
        ),
        (
            "EOF inside metadata",
            ct.into(),
            vec![0, 0, 0, 10, 0x0a],
            400,
            "MetadataReadError",
        ),
        (
            "oversized metadata length",
            ct.into(),
            vec![0xff, 0xff, 0xff, 0xff, 0, 0],
            413,
            "MetadataTooLong",
        ),
        (
            "garbage metadata",
            ct.into(),
            [vec![0, 0, 0, 5], vec![0xff; 5]].concat(),
            400,
            "MetadataDecodeError",
        ),
        (
            "unknown key",
            ct.into(),
            [
                metadata_frame(&noise("other key", 32)),
                vec![0, 0x00, 0x20, 0, 1, 0, 3],
                noise("enc", 32),
                vec![0],
                noise("ct", 40),
            ]
            .concat(),
            422,
            "ServerKeyConfigNotFound",
        ),
        (
            "garbage ciphertext",
            ct.into(),
            // Valid hint and header (key_id 0, X25519, HKDF-SHA256, ChaCha20-Poly1305), then noise.
            [
                metadata_frame(&pk),
                vec![0, 0x00, 0x20, 0, 1, 0, 3],
                noise("enc2", 32),
                vec![0],
                noise("ct2", 64),
            ]
            .concat(),
            500,
            "BhttpError",
        ),
    ];
    for (what, content_type, body, status, code) in cases {
        let mark = f.t.egress.log().len();
        let r = tunnel_post(&e, &content_type, &body);
        f.check(what, Some(mark), r, status, code);
    }
    assert_eq!(
        f.backend.requests(),
        f.served as u64,
        "a malformed request reached the backend"
    );
}

/// Ciphertext lengths of the chunks in a tunnel body (metadata, header and `enc` skipped);
/// the last entry is the final chunk.
fn chunk_layout(body: &[u8]) -> Vec<usize> {
    let meta_len = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
    let mut rest = &body[4 + meta_len + 7 + 32..];
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let width = 1usize << (rest[0] >> 6);
        let mut len = (rest[0] & 0x3f) as usize;
        for b in &rest[1..width] {
            len = (len << 8) | *b as usize;
        }
        rest = &rest[width..];
        if len == 0 {
            chunks.push(rest.len());
            break;
        }
        chunks.push(len);
        rest = &rest[len.min(rest.len())..];
    }
    chunks
}

#[test]
fn truncated_final_chunk_is_a_bhttp_error() {
    // Record a real encrypted request (made by our ingress) on its way to the egress, then
    // replay it directly with its last bytes cut off. Replay protection is off here: this
    // test replays on purpose (replay_window.rs covers the protection).
    let backend = Backend::start();
    let (egress, egress_port) =
        launch_egress(backend.addr(), json!({"limits": {"replay_window": 0}}));
    let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
    let (_ingress, ingress_port) =
        launch_ingress(&format!("127.0.0.1:{}", relay.port()), json!({}));
    let body = "a body for the sink ".repeat(100);
    let r = curl_status(&[
        "-d",
        &body,
        &format!("http://127.0.0.1:{ingress_port}/sink"),
    ]);
    assert_eq!(r.status, 200);
    pause(Duration::from_millis(200));
    let captured = split_requests(&relay.upstream());
    let tunnel_req = captured
        .iter()
        .find(|m| m.header("x-tng-ohttp-api").as_deref() == Some("/tng/tunnel"))
        .unwrap_or_else(|| panic!("no tunnel request captured: {captured:?}"));
    let full = &tunnel_req.body;
    assert!(full.len() > 60, "tunnel body only {} bytes", full.len());
    let layout = chunk_layout(full);
    println!("[truncate] captured tunnel body: {} bytes, chunks (ciphertext lengths, final last): {layout:?}", full.len());

    let e = format!("127.0.0.1:{egress_port}");
    // Cut inside the final chunk, and cut the whole final chunk (a stream ending on a chunk
    // boundary): both are truncations the final chunk's "final" AAD exists to detect.
    let final_len = *layout.last().expect("a final chunk");
    let mut problems = Vec::new();
    for (what, cut) in [("5 bytes cut", 5), ("final chunk removed", final_len + 1)] {
        let before = backend.requests();
        let mark = egress.log().len();
        let r = tunnel_post(&e, "message/ohttp-chunked-req", &full[..full.len() - cut]);
        let code = serde_json::from_slice::<serde_json::Value>(&r.body)
            .map(|v| v["code"].clone())
            .unwrap_or_default();
        pause(Duration::from_millis(100));
        let log = egress.log();
        let logged = log[mark.min(log.len())..]
            .lines()
            .any(|l| l.contains("WARN") || l.contains("ERROR"));
        println!(
            "[truncate] {what}: status {} code {code} warn-logged {logged}",
            r.status
        );
        if r.status != 500 || code != "BhttpError" || !logged {
            problems.push(format!(
                "{what}: want 500 BhttpError + WARN log, got {} {code} (logged: {logged}, {} body bytes)",
                r.status,
                r.body.len()
            ));
        }
        // /sink answers only after the whole body; the backend may see the request start,
        // but must never complete it.
        let served = backend.requests() - before;
        assert!(served <= 1, "backend saw {served} requests");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The untouched capture still decrypts: the failure above is the truncation.
    let r = tunnel_post(&e, "message/ohttp-chunked-req", full);
    assert_eq!(r.status, 200, "replayed intact request: {}", r.text());
    assert_eq!(r.header("content-type"), Some("message/ohttp-chunked-res"));
    let ok = curl_status(&[
        "-d",
        "after",
        &format!("http://127.0.0.1:{ingress_port}/echo"),
    ]);
    assert_eq!((ok.status, ok.text()), (200, "after".to_string()));
}

#[test]
fn direct_forward_paths_bypass_the_tunnel() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({"direct_forward": [{"http_path": "^/healthz$"}]}),
        json!({}),
    );
    let e = t.egress_addr();
    let r = raw_http(
        &e,
        b"GET /healthz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text()),
        (200, "hello from backend: GET /healthz".to_string())
    );
    let r = raw_http(
        &e,
        b"GET /healthz?probe=1 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text()),
        (200, "hello from backend: GET /healthz".to_string())
    );
    let r = raw_http(
        &e,
        b"GET /other HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "RejectNonTngRequest");
    let r = raw_http(
        &e,
        b"GET /healthz/x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 403, "the regex is anchored");
    assert_eq!(backend.requests(), 2);
    let ok = curl_status(&["-d", "tunnel", &t.url("/echo")]);
    assert_eq!((ok.status, ok.text()), (200, "tunnel".to_string()));
}
