//! The attestation stack failing around running gateways: the Attestation Service down at the
//! verifying ingress's start and in the middle of its run, and the egress's Attestation Agent
//! gone and back.

use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::*;

use crate::common::*;
use crate::stack::*;

/// backend ← egress (`attest`, background check, a new key every `rotation` s) ← relay ←
/// ingress (`verify`).
fn gateway(aa: &Aa, service: &As, rotation: u64) -> Gateway {
    let backend = Backend::start();
    let egress_port = free_port();
    let mut entry = egress_entry(egress_port, backend.port(), Some(attest_bg(aa)));
    entry["ohttp"]["key"]["rotation_interval"] = json!(rotation);
    let egress = Tng::launch_named("egress", json!({"add_egress": [entry]}));
    let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
    let ingress_port = free_port();
    let ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [ingress_entry(ingress_port, relay.port(), verify_bg(service, &["default"]))]}),
    );
    Gateway {
        backend,
        egress,
        relay,
        ingress,
        ingress_port,
    }
}

#[test]
fn attestation_service_down_at_start_stops_the_verifying_ingress() {
    let backend = Backend::start();
    let (as_port, ingress_port) = (free_port(), free_port());
    let config = json!({"add_ingress": [{
        "mapping": {"in": {"host": "127.0.0.1", "port": ingress_port},
                    "out": {"host": "127.0.0.1", "port": backend.port()}},
        "ohttp": {},
        "verify": {"as_addr": format!("http://127.0.0.1:{as_port}"), "policy_ids": ["default"]}
    }]});
    let (code, stderr) = Tng::launch_expect_failure(&config.to_string());
    // Without the AS's signing certificates no token could ever be checked: refuse to start
    // (as upstream does) rather than accept requests that can only fail.
    assert_eq!(code, Some(1), "{stderr}");
    let expected = format!(
        "error: add_ingress[0].verify: attestation service unreachable: \
         GET http://127.0.0.1:{as_port}/certificate: request failed:"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(&expected)),
        "no line starting {expected:?} in:\n{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", ingress_port)).is_err(),
        "the refused ingress left a listener behind"
    );
}

#[test]
fn attestation_service_down_mid_run_keeps_the_cached_key_until_it_expires() {
    let aa = Aa::start(&[]);
    let mut service = As::start(&[], &[]);
    // Keys live 2 × 3 s: the ingress must re-attest within seconds.
    let gw = gateway(&aa, &service, 3);
    gw.assert_echo("attested while the AS is up");
    let key_configs = gw.key_config_requests();

    service.stop();
    let stopped = Instant::now();
    let mut results: Vec<(Duration, u16, String)> = Vec::new();
    let deadline = stopped + Duration::from_secs(30);
    while results.iter().rev().take(3).filter(|r| r.1 != 200).count() < 3 {
        assert!(
            Instant::now() < deadline,
            "the ingress kept using a key past its expiry without attestation: {results:?}"
        );
        let r = gw.post_echo("while the AS is down");
        let code = if r.status == 200 {
            assert_eq!(r.text(), "while the AS is down");
            String::new()
        } else {
            let (_, code, message) = error_of(&r);
            assert_eq!(
                message,
                format!(
                    "server attestation failed: attestation service unreachable: \
                     POST {}/challenge: request failed: client error (Connect): \
                     Connection refused (os error 111)",
                    service.url()
                ),
                "{}",
                gw.logs()
            );
            code
        };
        results.push((stopped.elapsed(), r.status, code));
        pause(Duration::from_millis(200));
    }
    let cached_for = results
        .iter()
        .filter(|r| r.1 == 200)
        .map(|r| r.0)
        .max()
        .unwrap_or_default();
    // The verified key keeps serving, then every request is a clean 503 (never a 200 again
    // without a fresh attestation, never another status).
    assert_eq!(results[0].1, 200, "{results:?}");
    let first_refusal = results.iter().position(|r| r.1 != 200).expect("a refusal");
    assert!(
        results[first_refusal..]
            .iter()
            .all(|r| r.1 == 503 && r.2 == "AttestationServiceUnavailable"),
        "{results:?}"
    );
    // The background refresh before expiry failed and said so, without failing a request.
    assert!(
        gw.ingress
            .log()
            .contains("key config refresh failed, keeping the current key"),
        "{}",
        gw.logs()
    );
    // No key-config request reached the egress: the challenge comes first and it failed.
    assert_eq!(gw.key_config_requests(), key_configs);

    service.restart();
    let back = Instant::now();
    // The last failure answers for its back-off (at most FAILURE_BACKOFF_MAX): the same 503
    // until it passes, then the key is attested afresh.
    while back.elapsed() < Duration::from_secs(6) {
        let r = gw.post_echo("the AS is back");
        if r.status == 200 {
            break;
        }
        assert_eq!(
            (r.status, error_of(&r).1.as_str()),
            (503, "AttestationServiceUnavailable")
        );
        pause(Duration::from_millis(100));
    }
    gw.assert_echo("the AS is back");
    println!(
        "[faults] AS down mid-run: cached key served {} ms after the AS stopped, then 503 \
         AttestationServiceUnavailable; first success {} ms after the AS was back",
        cached_for.as_millis(),
        back.elapsed().as_millis()
    );
}

#[test]
fn attestation_agent_gone_and_back_without_restarting_the_egress() {
    let mut aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let gw = gateway(&aa, &service, 300);
    gw.assert_echo("the AA is up");
    let egress_pid = gw.egress.proc.pid();

    aa.proc.terminate();
    assert!(!aa.socket.exists(), "the AA left its socket behind");
    // The egress's own answer to a key-config request that needs evidence.
    let key_config = |challenge: &str| {
        curl_status(&[
            "-H",
            "x-tng-ohttp-api: /tng/key-config",
            "-H",
            "content-type: application/json",
            "--data-binary",
            &json!({"attestation_request": {"model": "background_check", "challenge_token": challenge}})
                .to_string(),
            &format!("http://127.0.0.1:{}/", gw.relay.port()),
        ])
    };
    let r = key_config("down");
    let (status, code, message) = error_of(&r);
    assert_eq!(
        (status, code.as_str()),
        (500, "GenServerHpkeConfigurationResponseFailed"),
        "{message}"
    );
    // Where the Attestation Agent lives is for the egress's log only.
    assert_eq!(message, "cannot get evidence");
    let line = gw
        .egress
        .wait_for_log("cannot connect to the Attestation Agent at", GENEROUS);
    assert!(line.contains(&aa.addr()), "{line}");
    // Tunnel requests need no evidence: the ingress's verified key keeps working.
    gw.assert_echo("cached attestation, AA down");
    // An ingress that has not verified this egress yet cannot.
    let fresh_port = free_port();
    let _fresh = Tng::launch_named(
        "ingress-fresh",
        json!({"add_ingress": [ingress_entry(fresh_port, gw.relay.port(), verify_bg(&service, &["default"]))]}),
    );
    let fresh_url = format!("http://127.0.0.1:{fresh_port}/echo");
    let r = curl_status(&["-d", "fresh while the AA is down", &fresh_url]);
    let (status, code, message) = error_of(&r);
    assert_eq!(
        (status, code.as_str()),
        (502, "ServerAttestationFailed"),
        "{message}"
    );
    assert!(
        message.starts_with("server attestation failed: the egress could not attest: "),
        "{message}"
    );
    assert!(
        message.contains("GenServerHpkeConfigurationResponseFailed"),
        "{message}"
    );

    aa.restart(&[]);
    let back = Instant::now();
    // The failed fetch answers the next requests for a short back-off (at most
    // FAILURE_BACKOFF_MAX, here the first step): the same 502 until it passes.
    let r = loop {
        let r = curl_status(&["-d", "fresh, AA back", &fresh_url]);
        if r.status == 200 || back.elapsed() > Duration::from_secs(6) {
            break r;
        }
        assert_eq!(error_of(&r).1, "ServerAttestationFailed", "{}", r.text());
        pause(Duration::from_millis(100));
    };
    assert_eq!(
        (r.status, r.text()),
        (200, "fresh, AA back".to_string()),
        "{}",
        gw.logs()
    );
    println!(
        "[faults] AA gone: key-config 500 GenServerHpkeConfigurationResponseFailed, unverified \
         ingress 502 ServerAttestationFailed, verified ingress unaffected; first success {} ms \
         after the AA was back",
        back.elapsed().as_millis()
    );
    assert_eq!(key_config("back").status, 200);
    assert_eq!(gw.egress.proc.pid(), egress_pid);
    assert!(wait_http_ok(
        &format!("{}/readyz", gw.egress.control_url()),
        GENEROUS
    ));
}

/// The egress SIGKILLed under load behind a verifying ingress: the new process has a new key,
/// so the ingress must attest it afresh (challenge, evidence, AS) before replaying, and still
/// lose nothing but the requests the dead process was serving.
#[test]
fn attested_egress_killed_under_load_is_verified_afresh() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let mut gw = gateway(&aa, &service, 300);
    gw.assert_echo("first attestation");
    let first_token = gw.server_attestation();
    let key_configs = gw.key_config_requests();
    let load = Load::start(&format!("127.0.0.1:{}", gw.ingress_port), 4);
    load.wait_successes(0, 30, GENEROUS);

    let in_flight = load.pause();
    let killed = Instant::now();
    kill(&mut gw.egress.proc);
    load.wait_idle(GENEROUS);
    let new = relaunch(&gw.egress, "egress-restarted");
    drop(std::mem::replace(&mut gw.egress, new));
    let downtime = killed.elapsed();
    let failed_at_kill = failures(&load.outcomes()).len();
    let ok = load.outcomes().iter().filter(|o| o.ok).count();
    let resumed = Instant::now();
    load.resume();
    load.wait_successes(ok, 40, GENEROUS);
    let outcomes = load.stop();
    let first_ok = outcomes
        .iter()
        .filter(|o| o.ok && o.start >= resumed)
        .map(|o| o.end - resumed)
        .min()
        .unwrap_or_default();
    let failed = failures(&outcomes);
    println!(
        "[faults] attested egress SIGKILL under load: {} requests, {} failed ({in_flight} in \
         flight), downtime {} ms, first success {} ms after the new egress was ready (includes \
         the new attestation)",
        outcomes.len(),
        failed.len(),
        downtime.as_millis(),
        first_ok.as_millis()
    );
    assert_eq!(
        failed.len(),
        failed_at_kill,
        "requests failed after the restart: {:?}",
        failed.iter().map(|o| &o.detail).collect::<Vec<_>>()
    );
    assert!(failed_at_kill <= in_flight);
    // Attested afresh: one more key-config exchange, a new token for the new key.
    assert!(gw.key_config_requests() > key_configs, "{}", gw.logs());
    assert_ne!(gw.server_attestation(), first_token);
}
