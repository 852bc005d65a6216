//! Key rotation under load and the ingress's transparent retry after a 422.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::client::H1Conn;
use tng_e2e::keys::write_x25519_pem;
use tng_e2e::*;

#[test]
fn rotation_every_2s_under_load_loses_nothing() {
    let backend = Backend::start();
    let t = tunnel(
        backend.addr(),
        json!({"ohttp": {"key": {"source": "self_generated", "rotation_interval": 2}}}),
        json!({}),
    );
    let keys: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (keys, stop) = (keys.clone(), stop.clone());
        let url = format!("{}/status/egress/0/ohttp/keys", t.egress.control_url());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = http_get(&url);
                if status == 200 {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                        for k in v["local_keys"].as_array().into_iter().flatten() {
                            if let Some(pk) = k["public_key"].as_str() {
                                keys.lock().unwrap().insert(pk.to_string());
                            }
                        }
                    }
                }
                pause(Duration::from_millis(250));
            }
        })
    };

    let ok = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = t.ingress_addr();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut loops = Vec::new();
        for l in 0..8u32 {
            let (addr, ok, failures) = (addr.clone(), ok.clone(), failures.clone());
            loops.push(tokio::spawn(async move {
                let mut conn: Option<H1Conn> = None;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    if conn.is_none() {
                        match H1Conn::connect(&addr).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("loop {l} connect: {e}"));
                                continue;
                            }
                        }
                    }
                    let body = format!("loop {l} request {n}");
                    let result = tokio::time::timeout(
                        Duration::from_secs(10),
                        conn.as_mut().unwrap().post("/echo", body.clone()),
                    )
                    .await;
                    match result {
                        Ok(Ok(r)) if r.status == 200 && r.body == body.as_bytes() => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Ok(r)) => failures.lock().unwrap().push(format!(
                            "loop {l} #{n}: {} {:?}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )),
                        Ok(Err(e)) => {
                            failures.lock().unwrap().push(format!("loop {l} #{n}: {e}"));
                            conn = None;
                        }
                        Err(_) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("loop {l} #{n}: timeout"));
                            conn = None;
                        }
                    }
                }
            }));
        }
        for l in loops {
            l.await.unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    let failures = failures.lock().unwrap();
    let keys = keys.lock().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "[rotation] {ok} ok, {} failed, {} distinct keys",
        failures.len(),
        keys.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}\ningress log:\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        t.ingress.log_tail(20)
    );
    assert!(ok >= 200, "only {ok} requests in 30 s");
    assert!(keys.len() >= 5, "only {} distinct keys seen", keys.len());
    assert_eq!(backend.requests(), ok);
    // Every advertised key after the first is a rotation (sampled each second, so a key that
    // came and went between two samples may be missed); the active key is young.
    let rotations = t.egress.metric("tng_ohttp_key_rotations_total", &[]);
    assert!(
        rotations >= 3.0 && rotations <= keys.len() as f64 + 1.0,
        "{rotations} rotations counted, {} keys seen",
        keys.len()
    );
    let age = t.egress.metric("tng_ohttp_active_key_age_seconds", &[]);
    assert!((0.0..=5.0).contains(&age), "active key age {age} s");
}

fn wait_for_new_key(egress: &Tng, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let keys = egress.egress_public_keys(0);
        if keys.len() == 1 && keys[0] != old {
            return keys[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "egress still lists {keys:?} after the key file changed"
        );
        pause(Duration::from_millis(100));
    }
}

#[test]
fn replaced_key_file_is_retried_transparently_for_small_bodies() {
    let backend = Backend::start();
    let dir = test_dir("key-file");
    let pem = dir.join("ohttp-key.pem");
    write_x25519_pem(&pem, "key one");
    let t = tunnel(
        backend.addr(),
        json!({"ohttp": {"key": {"source": "file", "path": pem.display().to_string()}}}),
        json!({}),
    );
    let status = t.egress.status_json("/status/egress/0/ohttp/keys");
    assert_eq!(status["key_manager_type"], "file");
    let first = curl_status(&["-d", "first", &t.url("/echo")]);
    assert_eq!((first.status, first.text()), (200, "first".to_string()));
    let old = t.egress.egress_public_keys(0)[0].clone();

    // The ingress still caches `old`; the egress now only knows the new key.
    write_x25519_pem(&pem, "key two");
    let new = wait_for_new_key(&t.egress, &old);
    let before = backend.requests();
    let r = curl_status(&["-d", "replayed after 422", &t.url("/echo")]);
    assert_eq!(
        (r.status, r.text()),
        (200, "replayed after 422".to_string()),
        "ingress log:\n{}",
        t.ingress.log_tail(20)
    );
    assert_eq!(
        backend.requests() - before,
        1,
        "the backend must see exactly one copy"
    );
    let servers = t.ingress.status_json("/status/ingress/0/ohttp/keys");
    assert_eq!(servers["servers"][0]["server_public_key"], new.as_str());

    // A body beyond the 64 KiB replay buffer cannot be replayed: a clear 502, nothing delivered.
    write_x25519_pem(&pem, "key three");
    wait_for_new_key(&t.egress, &new);
    let big = dir.join("big.bin");
    std::fs::write(&big, pattern_bytes(0, 1 << 20)).unwrap();
    let before = backend.requests();
    let r = curl_status(&[
        "--data-binary",
        &format!("@{}", big.display()),
        &t.url("/sink"),
    ]);
    assert_eq!(r.status, 502, "body {}", r.text());
    assert_eq!(r.json()["code"], "ServerKeyChanged");
    assert_eq!(
        backend.requests() - before,
        0,
        "the backend got part of the failed request"
    );
    // The ingress has refetched by now.
    let r = curl_status(&["-d", "after", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "after".to_string()));
}
