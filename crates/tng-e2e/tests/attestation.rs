//! Server-side remote attestation end to end, on loopback with the sample attestation stack:
//! egress `attest` (background check and passport) against ingress `verify`.
//!
//! - Happy paths: the exact body crosses the tunnel and the ingress status shows the EAR token
//!   it accepted.
//! - Fail closed: for each failure cause (Attestation Service down, unknown policy,
//!   contraindicated status, a policy id the token does not carry, tampered evidence, untrusted
//!   token signer, expired token, model mismatch, an egress that does not attest) the local
//!   client gets the exact status, code and reason; the egress receives no tunnel request (seen
//!   on a recording relay of the outer leg) and the backend no request. Removing the cause makes
//!   the next request succeed (no wedge).
//! - Interop with upstream TNG 2.9.0 and 2.7.3 in both directions through the same stack.

#[path = "attestation/stack.rs"]
mod stack;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use serde_json::json;
use stack::*;
use tng_e2e::*;

const SERVER_FAILED: &str = "ServerAttestationFailed";

// ---------------------------------------------------------------------------------------------
// Happy paths

#[test]
fn background_check_verified_server_gets_the_request() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["default"]));
    gw.assert_echo("hello attested world");
    gw.assert_echo("second request, same verified key");
    assert_eq!(gw.tunnel_requests(), 2, "{}", gw.logs());

    let token = gw.server_attestation();
    let claims = jwt_claims(&token);
    let cpu = &claims["submods"]["cpu0"];
    assert_eq!(cpu["ear.status"], "affirming", "{claims}");
    assert_eq!(cpu["ear.appraisal-policy-id"], "default", "{claims}");
    let runtime = &cpu["ear.veraison.annotated-evidence"]["runtime_data_claims"];
    assert!(
        runtime["challenge_token"].is_string() && runtime["hpke_key_config"].is_object(),
        "background check binds challenge and key: {runtime}"
    );
}

#[test]
fn passport_verified_server_gets_the_request() {
    let aa = Aa::start(&[]);
    // The egress converts its evidence at its own AS; the ingress trusts that AS's signer.
    let egress_as = As::start(&[], &[]);
    let gw = Gateway::start(
        Some(attest_passport(&aa, &egress_as)),
        json!({"model": "passport", "as_addr": egress_as.url(), "policy_ids": ["default"]}),
    );
    gw.assert_echo("passport body");

    let claims = jwt_claims(&gw.server_attestation());
    let cpu = &claims["submods"]["cpu0"];
    assert_eq!(cpu["ear.status"], "affirming", "{claims}");
    let runtime = &cpu["ear.veraison.annotated-evidence"]["runtime_data_claims"];
    assert!(
        runtime["hpke_key_config"].is_object(),
        "the passport binds the key: {runtime}"
    );
}

// ---------------------------------------------------------------------------------------------
// Failure causes

#[test]
fn attestation_service_down_is_503_and_recovers_when_it_returns() {
    let aa = Aa::start(&[]);
    let mut service = As::start(&[], &[]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["default"]));
    service.stop();
    let message = gw.assert_refused(
        503,
        "AttestationServiceUnavailable",
        "attestation service unreachable",
    );
    assert!(
        message.starts_with("server attestation failed: "),
        "{message}"
    );
    // Still down: still refused, never wedged into a different state.
    gw.assert_refused(
        503,
        "AttestationServiceUnavailable",
        "attestation service unreachable",
    );
    assert_eq!(gw.key_config_requests(), 0, "the challenge comes first");

    service.restart();
    gw.assert_recovers("the AS is back");
}

#[test]
fn unknown_policy_is_refused_by_the_as_and_recovers_once_installed() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["nonexistent"]));
    let message = gw.assert_refused(502, SERVER_FAILED, "AS.POLICY.NOT_FOUND");
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("nonexistent"), "{message}");

    service.set_policy("nonexistent", AFFIRMING_POLICY);
    gw.assert_recovers("policy installed");
}

#[test]
fn contraindicated_status_is_refused_and_recovers_when_the_policy_changes() {
    let aa = Aa::start(&[]);
    let service = As::start(&[("strict", CONTRAINDICATING_POLICY)], &[]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["strict"]));
    let message = gw.assert_refused(
        502,
        SERVER_FAILED,
        "submodule cpu0 status is contraindicated",
    );
    assert_eq!(
        message,
        "server attestation failed: submodule cpu0 status is contraindicated"
    );

    // Counted by reason on the verifying ingress, none yet successful.
    let failures = |reason| {
        gw.ingress
            .metric("tng_attestation_failures_total", &[("reason", reason)])
    };
    assert!(
        failures("policy_rejected") >= 1.0,
        "{}",
        failures("policy_rejected")
    );
    assert_eq!(failures("service_unavailable"), 0.0);
    let verified = || {
        gw.ingress.metric(
            "tng_attestation_verifications_total",
            &[("result", "success")],
        )
    };
    assert_eq!(verified(), 0.0);

    service.set_policy("strict", AFFIRMING_POLICY);
    gw.assert_recovers("policy relaxed");
    assert_eq!(verified(), 1.0);
}

/// The AS requires every requested policy to exist but appraises with the first one only, and
/// the EAR token names only that one (as the openanolis EAR broker does), so a second
/// configured policy id is always missing from the token.
#[test]
fn policy_id_missing_from_the_token_is_refused() {
    let aa = Aa::start(&[]);
    let service = As::start(&[("other", AFFIRMING_POLICY)], &[]);
    let gw = Gateway::start(
        Some(attest_bg(&aa)),
        verify_bg(&service, &["default", "other"]),
    );
    let message = gw.assert_refused(502, SERVER_FAILED, "policy id other missing from the token");
    assert_eq!(
        message,
        "server attestation failed: policy id other missing from the token"
    );
}

#[test]
fn tampered_evidence_is_refused_and_recovers_with_an_honest_agent() {
    let mut aa = Aa::start(&["--wrong-report-data"]);
    let service = As::start(&[], &[]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["default"]));
    let message = gw.assert_refused(502, SERVER_FAILED, "AS.EVIDENCE.BINDING_MISMATCH");
    assert!(message.contains("422"), "{message}");

    aa.restart(&[]);
    gw.assert_recovers("honest evidence");
}

#[test]
fn token_of_an_untrusted_signer_is_refused() {
    let aa = Aa::start(&[]);
    let egress_as = As::start(&[], &[]);
    let other_as = As::start(&[], &[]);
    let backend_attest = attest_passport(&aa, &egress_as);
    // Control: the same egress, verified against the right CA file, is accepted.
    let trusted = Gateway::start(
        Some(backend_attest.clone()),
        json!({"model": "passport", "policy_ids": ["default"],
               "trusted_certs_paths": [egress_as.ca_pem()]}),
    );
    trusted.assert_echo("signed by a trusted AS");

    let gw = Gateway::start(
        Some(backend_attest),
        json!({"model": "passport", "policy_ids": ["default"],
               "trusted_certs_paths": [other_as.ca_pem()]}),
    );
    gw.assert_refused(502, SERVER_FAILED, "token signer is not trusted");
}

#[test]
fn expired_token_is_refused() {
    let aa = Aa::start(&[]);
    // Tokens live 5 min and are dated 400 s back: expired 100 s ago, beyond the 60 s leeway.
    let service = As::start(&[], &["--token-backdate-seconds", "400"]);
    let gw = Gateway::start(Some(attest_bg(&aa)), verify_bg(&service, &["default"]));
    gw.assert_refused(502, SERVER_FAILED, "token expired");
}

#[test]
fn expired_passport_token_is_refused() {
    let aa = Aa::start(&[]);
    let egress_as = As::start(&[], &["--token-backdate-seconds", "400"]);
    let gw = Gateway::start(
        Some(attest_passport(&aa, &egress_as)),
        json!({"model": "passport", "as_addr": egress_as.url(), "policy_ids": ["default"]}),
    );
    gw.assert_refused(502, SERVER_FAILED, "token expired");
}

#[test]
fn passport_egress_for_a_background_check_ingress_is_refused() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let gw = Gateway::start(
        Some(attest_passport(&aa, &service)),
        verify_bg(&service, &["default"]),
    );
    // The egress refused the key-config request; its answer carries a code the ingress
    // relays, and its reason, which the ingress logs and does not relay (an egress's reasons
    // may name what only its operator should read).
    gw.assert_refused(
        502,
        SERVER_FAILED,
        "GenServerHpkeConfigurationResponseFailed",
    );
    assert!(
        gw.ingress
            .log()
            .contains("Passport model is expected but background check model is requested"),
        "the ingress log does not carry the egress's reason\n{}",
        gw.logs()
    );
}

#[test]
fn background_check_egress_for_a_passport_ingress_is_refused() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let gw = Gateway::start(
        Some(attest_bg(&aa)),
        json!({"model": "passport", "as_addr": service.url(), "policy_ids": ["default"]}),
    );
    // The egress refused the key-config request; its answer carries a code the ingress
    // relays, and its reason, which the ingress logs and does not relay (an egress's reasons
    // may name what only its operator should read).
    gw.assert_refused(
        502,
        SERVER_FAILED,
        "GenServerHpkeConfigurationResponseFailed",
    );
    assert!(
        gw.ingress
            .log()
            .contains("Background check model is expected but passport model is requested"),
        "the ingress log does not carry the egress's reason\n{}",
        gw.logs()
    );
}

#[test]
fn egress_without_attest_is_refused() {
    let service = As::start(&[], &[]);
    let gw = Gateway::start(None, verify_bg(&service, &["default"]));
    gw.assert_refused(502, SERVER_FAILED, "the egress sent no attestation");
}

// ---------------------------------------------------------------------------------------------
// Interop with upstream TNG through the sample stack

/// Our ingress (`verify`, background check) → upstream egress (`attest`).
fn ours_verify_upstream_attest(version: &str) {
    let Some(upstream) = upstream_bin(version) else {
        return;
    };
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let backend = Backend::start();
    let egress_port = free_port();
    let egress = launch_upstream(
        &upstream,
        &format!("upstream-{version}-egress"),
        &json!({"add_egress": [egress_entry(egress_port, backend.port(), Some(attest_bg(&aa)))]}),
        egress_port,
    );
    let ingress_port = free_port();
    let ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [ingress_entry(ingress_port, egress_port,
                                             verify_bg(&service, &["default"]))]}),
    );
    for body in ["first through upstream", "second through upstream"] {
        let resp = curl_status(&[
            "--data-binary",
            body,
            &format!("http://127.0.0.1:{ingress_port}/echo"),
        ]);
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, body),
            "--- our ingress:\n{}\n--- upstream {version} egress:\n{}",
            ingress.log_tail(30),
            egress.log_tail(30)
        );
    }
    assert_eq!(backend.requests(), 2);
    let token = ingress.status_json("/status/ingress/0/ohttp/keys")["servers"][0]
        ["server_attestation"]
        .as_str()
        .map(str::to_string)
        .expect("server_attestation");
    assert_eq!(
        jwt_claims(&token)["submods"]["cpu0"]["ear.status"],
        "affirming"
    );
}

/// Upstream ingress (`verify`, background check) → our egress (`attest`).
fn upstream_verify_ours_attest(version: &str) {
    let Some(upstream) = upstream_bin(version) else {
        return;
    };
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let backend = Backend::start();
    let egress_port = free_port();
    let egress = Tng::launch_named(
        "egress",
        json!({"add_egress": [egress_entry(egress_port, backend.port(), Some(attest_bg(&aa)))]}),
    );
    let ingress_port = free_port();
    let ingress = launch_upstream(
        &upstream,
        &format!("upstream-{version}-ingress"),
        &json!({"add_ingress": [ingress_entry(ingress_port, egress_port,
                                              verify_bg(&service, &["default"]))]}),
        ingress_port,
    );
    for body in ["first from upstream", "second from upstream"] {
        let resp = curl_status(&[
            "--data-binary",
            body,
            &format!("http://127.0.0.1:{ingress_port}/echo"),
        ]);
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, body),
            "--- upstream {version} ingress:\n{}\n--- our egress:\n{}",
            ingress.log_tail(30),
            egress.log_tail(30)
        );
    }
    assert_eq!(backend.requests(), 2);
    // The upstream ingress really had our egress's evidence appraised.
    assert!(
        aa.proc.log().contains("GetEvidence"),
        "our egress never asked the AA for evidence"
    );
    assert!(
        service.proc.log().contains("POST /attestation -> 200"),
        "the upstream ingress never had evidence appraised:\n{}",
        service.proc.log_tail(20)
    );
}

#[test]
fn interop_ours_verify_upstream_2_9_0_attest() {
    ours_verify_upstream_attest("2.9.0");
}

#[test]
fn interop_upstream_2_9_0_verify_ours_attest() {
    upstream_verify_ours_attest("2.9.0");
}

#[test]
fn interop_ours_verify_upstream_2_7_3_attest() {
    ours_verify_upstream_attest("2.7.3");
}

#[test]
fn interop_upstream_2_7_3_verify_ours_attest() {
    upstream_verify_ours_attest("2.7.3");
}

// ---------------------------------------------------------------------------------------------
// Runtime-data binding: an egress whose key-config answer is altered on the way (the key config
// no longer matches what its evidence was bound to) must be refused, with no request leaving
// the ingress.

/// Forwards connections to `target`, changing the last digit of the first
/// `"expire_timestamp":NNNN…` in each answer (same length, so framing stays valid).
fn tampering_relay(target: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("relay addr").port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tamper(&mut buf[..n]);
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

fn tamper(data: &mut [u8]) {
    const NEEDLE: &[u8] = b"\"expire_timestamp\":";
    if let Some(at) = data.windows(NEEDLE.len()).position(|w| w == NEEDLE) {
        let digits_start = at + NEEDLE.len();
        let digits = data[digits_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            let last = digits_start + digits - 1;
            data[last] = if data[last] == b'9' {
                b'0'
            } else {
                data[last] + 1
            };
        }
    }
}

#[test]
fn key_config_not_matching_the_evidence_is_refused() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let backend = Backend::start();
    let egress_port = free_port();
    let _egress = Tng::launch_named(
        "egress",
        json!({"add_egress": [egress_entry(egress_port, backend.port(), Some(attest_bg(&aa)))]}),
    );
    let relay_port = tampering_relay(format!("127.0.0.1:{egress_port}"));
    let ingress_port = free_port();
    let _ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [ingress_entry(ingress_port, relay_port, verify_bg(&service, &["default"]))]}),
    );
    let response = curl_status(&[
        "--data-binary",
        "never sent",
        &format!("http://127.0.0.1:{ingress_port}/echo"),
    ]);
    assert_eq!(response.status, 502, "{}", response.text());
    let body = response.json();
    assert_eq!(body["code"], "ServerAttestationFailed");
    assert_eq!(
        body["message"],
        "server attestation failed: runtime data mismatch: hpke_key_config differs"
    );
    assert_eq!(backend.requests(), 0);
}
