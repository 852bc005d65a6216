//! The `tng` command line: configuration errors and graceful shutdown.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::*;

fn egress(extra: &str) -> String {
    format!(
        r#"{{"add_egress": [{{"mapping": {{"in": {{"host": "127.0.0.1", "port": 1}}, "out": {{"host": "127.0.0.1", "port": 2}}}}, "no_ra": true{extra}}}]}}"#
    )
}

fn ingress(mapping: &str, extra: &str) -> String {
    format!(r#"{{"add_ingress": [{{"mapping": {mapping}, "no_ra": true{extra}}}]}}"#)
}

const MAPPING: &str =
    r#"{"in": {"host": "127.0.0.1", "port": 1}, "out": {"host": "127.0.0.1", "port": 2}}"#;

#[test]
fn bad_configs_exit_1_with_one_exact_line() {
    let table: Vec<(String, &str)> = vec![
        (r#"{"add_ingress": [],}"#.into(), "invalid JSON: trailing comma at line 1 column 20"),
        (
            r#"{"add_ingres": []}"#.into(),
            "unknown field `add_ingres`, expected one of `add_ingress`, `add_egress`, `control_interface`, `metric`, `trace`, `admin_bind`",
        ),
        (
            egress(r#", "ohttp": {"key": {"source": "self_generated", "rotation_interval": 0}}"#),
            "add_egress[0].ohttp.key.rotation_interval: must be > 0",
        ),
        (
            egress(r#", "ohttp": {"key": {"source": "file"}}"#),
            "add_egress[0].ohttp.key.path: required",
        ),
        (
            egress(r#", "direct_forward": [{"http_path": "^/x($"}]"#),
            "add_egress[0].direct_forward[0].http_path: invalid regex: unclosed group",
        ),
        (
            ingress(MAPPING, r#", "ohttp": {"path_defualt": "root"}"#),
            "add_ingress[0].ohttp: unknown field `path_defualt`, expected one of `path_rewrites`, `path_default`, `header_passthrough`, `tls`, `tls_ca_certs`, `send_client_ip`",
        ),
        (
            ingress(
                r#"{"rules": [{"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}}, {"in": {"port": 10}, "out": {"host": "127.0.0.1", "port": 20, "port_end": 19}}]}"#,
                "",
            ),
            "add_ingress[0].mapping.rules[1].out.port_end: must be >= port (20)",
        ),
        (
            r#"{"add_egress": [{"no_ra": true}]}"#.into(),
            "add_egress[0]: no mode given: expected one of mapping, netfilter, mapping_udp, netfilter_udp, hook",
        ),
        (
            // The peer channel's attester is checked like the entry's own.
            egress(r#", "ohttp": {"key": {"source": "peer_shared", "rotation_interval": 5, "attest": {"aa_addr": "unix:///run/tng-e2e-no-such-agent.sock"}}}"#),
            "add_egress[0].ohttp.key.attest.aa_addr: Attestation Agent socket file /run/tng-e2e-no-such-agent.sock not found",
        ),
    ];
    let mut mismatches = Vec::new();
    for (config, message) in &table {
        let (code, stderr) = Tng::launch_expect_failure(config);
        let want = format!("error: invalid configuration: {message}\n");
        if code != Some(1) || stderr != want {
            mismatches.push(format!(
                "config {config}\n  want exit 1, {want:?}\n  got  exit {code:?}, {stderr:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// An attesting gateway whose Attestation Agent socket does not exist must not start: it
/// could never prove its TEE. The check runs before anything listens.
#[test]
fn missing_attestation_agent_socket_stops_startup() {
    let ctl = free_port();
    let config = json!({
        "control_interface": {"restful": {"host": "127.0.0.1", "port": ctl}},
        "add_egress": [{"mapping": {"in": {"host": "127.0.0.1", "port": free_port()},
                                    "out": {"host": "127.0.0.1", "port": 9}},
                        "ohttp": {},
                        "attest": {"aa_addr": "unix:///run/tng-e2e-no-such-agent.sock"}}]
    });
    let (code, stderr) = Tng::launch_expect_failure(&config.to_string());
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: invalid configuration: add_egress[0].attest.aa_addr: Attestation Agent socket file /run/tng-e2e-no-such-agent.sock not found\n"
    );
    assert!(TcpListener::bind(("127.0.0.1", ctl)).is_ok());
}

#[test]
fn validation_happens_before_any_socket_is_bound() {
    // We hold the ingress port ourselves: if tng bound sockets before validating the whole
    // configuration, it would fail with "address in use" instead of the config error.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let ctl = free_port();
    let config = json!({
        "control_interface": {"restful": {"host": "127.0.0.1", "port": ctl}},
        "add_ingress": [{"mapping": {"in": {"host": "127.0.0.1", "port": port},
                                     "out": {"host": "127.0.0.1", "port": 9}},
                         "no_ra": true}],
        "add_egress": [{"mapping": {"in": {"host": "127.0.0.1", "port": free_port()},
                                    "out": {"host": "127.0.0.1", "port": 9}},
                        "ohttp": {"key": {"source": "self_generated", "rotation_interval": 0}},
                        "no_ra": true}]
    });
    let (code, stderr) = Tng::launch_expect_failure(&config.to_string());
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: invalid configuration: add_egress[0].ohttp.key.rotation_interval: must be > 0\n"
    );
    // And the control port was never bound either.
    assert!(TcpListener::bind(("127.0.0.1", ctl)).is_ok());
    drop(held);
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let backend = Backend::start();
    let mut t = tunnel(backend.addr(), json!({}), json!({}));
    assert_eq!(curl_status(&[&t.url("/warmup")]).status, 200);

    // In-flight request through both processes.
    let slow = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg(t.url("/slow?ms=1500"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the backend has it, so the signal really lands mid-request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "slow request never reached the backend"
        );
        pause(Duration::from_millis(20));
    }
    t.ingress.proc.signal("TERM");
    t.egress.proc.signal("TERM");
    pause(Duration::from_millis(300));

    // New connections are refused after the signal.
    let refused = std::net::TcpStream::connect(t.ingress_addr());
    assert!(
        refused.is_err(),
        "ingress still accepts new connections after SIGTERM"
    );

    let out = slow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        text,
        "slow 1500 ms\n\n200",
        "curl stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ingress_status = t.ingress.proc.wait_timeout(Duration::from_secs(15));
    let egress_status = t.egress.proc.wait_timeout(Duration::from_secs(15));
    assert_eq!(
        ingress_status.and_then(|s| s.code()),
        Some(0),
        "ingress log:\n{}",
        t.ingress.log_tail(30)
    );
    assert_eq!(
        egress_status.and_then(|s| s.code()),
        Some(0),
        "egress log:\n{}",
        t.egress.log_tail(30)
    );
}
