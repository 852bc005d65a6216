//! Attested rats-TLS end to end, on loopback with the sample attestation stack (a real AA
//! over ttrpc, a real AS): the four role combinations in both models, multiplex off and on;
//! fail-closed refusals with zero bytes delivered to the service and the exact reason logged;
//! certificate rotation under load; interop with upstream 2.12.0 through the same stack.
//!
//! The service behind the egress is a byte-counting echo server, so "zero bytes delivered"
//! is measured where it matters, not inferred from an HTTP status.

#[path = "attestation/stack.rs"]
#[allow(dead_code)]
mod stack;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::{launch_upstream, upstream_bin, Aa, As, CONTRAINDICATING_POLICY};
use tng_e2e::*;

// ---------------------------------------------------------------------------------------------
// The service: an echo server counting connections and bytes received.

struct Echo {
    port: u16,
    connections: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (c, b) = (connections.clone(), bytes.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                b.fetch_add(n as u64, Ordering::SeqCst);
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        Echo {
            port,
            connections,
            bytes,
        }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

/// Sends `payload` through the ingress at `port`, half-closes, reads until EOF.
fn exchange(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(payload)?;
    stream.shutdown(Shutdown::Write)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Roles, models, configuration

#[derive(Clone, Copy, Debug, PartialEq)]
enum Roles {
    NoRa,
    /// Egress `attest`, ingress `verify`.
    ServerAttested,
    /// Ingress `attest`, egress `verify` (mutual TLS).
    ClientAttested,
    Both,
}

struct Stack {
    aa: Aa,
    service: As,
}

impl Stack {
    fn start() -> Stack {
        Stack {
            aa: Aa::start(&[]),
            service: As::start(&[], &[]),
        }
    }

    fn attest(&self, passport: bool) -> Value {
        if passport {
            json!({"model": "passport", "aa_addr": self.aa.addr(), "as_addr": self.service.url(),
                   "policy_ids": ["default"]})
        } else {
            json!({"aa_addr": self.aa.addr()})
        }
    }

    fn verify(&self, passport: bool) -> Value {
        let mut verify = json!({"as_addr": self.service.url(), "policy_ids": ["default"]});
        if passport {
            verify["model"] = json!("passport");
        }
        verify
    }

    /// `(ingress ra, egress ra)` for a role combination.
    fn ra(&self, roles: Roles, passport: bool) -> (Value, Value) {
        let no_ra = json!({"no_ra": true});
        let attest = json!({"attest": self.attest(passport)});
        let verify = json!({"verify": self.verify(passport)});
        let both = json!({"attest": self.attest(passport), "verify": self.verify(passport)});
        match roles {
            Roles::NoRa => (no_ra.clone(), no_ra),
            Roles::ServerAttested => (verify, attest),
            Roles::ClientAttested => (attest, verify),
            Roles::Both => (both.clone(), both),
        }
    }
}

fn with_ra(mut entry: Value, ra: &Value) -> Value {
    for (k, v) in ra.as_object().expect("ra object") {
        entry[k] = v.clone();
    }
    entry
}

fn egress_entry(port: u16, service_port: u16, ra: &Value, multiplex: bool) -> Value {
    with_ra(
        json!({"mapping": {"in": {"host": "127.0.0.1", "port": port},
                           "out": {"host": "127.0.0.1", "port": service_port}},
               "rats_tls": {"multiplex": multiplex}}),
        ra,
    )
}

fn ingress_entry(port: u16, egress_port: u16, ra: &Value, multiplex: bool) -> Value {
    with_ra(
        json!({"mapping": {"in": {"host": "127.0.0.1", "port": port},
                           "out": {"host": "127.0.0.1", "port": egress_port}},
               "rats_tls": {"multiplex": multiplex}}),
        ra,
    )
}

/// One side: ours, or an upstream binary.
enum Peer {
    Ours(Tng),
    Upstream(Proc),
}

impl Peer {
    fn log(&self) -> String {
        match self {
            Peer::Ours(tng) => tng.log(),
            Peer::Upstream(proc) => proc.log(),
        }
    }

    /// A `/metrics` sample of ours (see [`Tng::metric`]).
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self {
            Peer::Ours(tng) => tng.metric(name, labels),
            Peer::Upstream(_) => panic!("upstream serves no /metrics"),
        }
    }
}

fn launch(name: &str, upstream: Option<&PathBuf>, config: Value, port: u16) -> Peer {
    match upstream {
        Some(bin) => Peer::Upstream(launch_upstream(bin, name, &config, port)),
        None => Peer::Ours(Tng::launch_named(name, config)),
    }
}

/// echo ← egress ← ingress, all on loopback.
struct Pair {
    echo: Echo,
    egress: Peer,
    ingress: Peer,
    ingress_port: u16,
    egress_port: u16,
    multiplex: bool,
    egress_verifies: bool,
}

impl Pair {
    fn start(
        ingress_ra: &Value,
        egress_ra: &Value,
        multiplex: bool,
        upstream_ingress: Option<&PathBuf>,
        upstream_egress: Option<&PathBuf>,
    ) -> Pair {
        let echo = Echo::start();
        let egress_port = free_port();
        let egress = launch(
            "egress",
            upstream_egress,
            json!({"add_egress": [egress_entry(egress_port, echo.port, egress_ra, multiplex)]}),
            egress_port,
        );
        let ingress_port = free_port();
        let ingress = launch(
            "ingress",
            upstream_ingress,
            json!({"add_ingress": [ingress_entry(ingress_port, egress_port, ingress_ra, multiplex)]}),
            ingress_port,
        );
        Pair {
            echo,
            egress,
            ingress,
            ingress_port,
            egress_port,
            multiplex,
            egress_verifies: egress_ra.get("verify").is_some(),
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- ingress log:\n{}\n--- egress log:\n{}",
            tail(&self.ingress.log(), 30),
            tail(&self.egress.log(), 30)
        )
    }

    /// `payload` comes back byte-exact through the tunnel.
    fn assert_echo(&self, payload: &[u8]) {
        let got = exchange(self.ingress_port, payload).unwrap_or_else(|e| {
            // The gateways write their logs asynchronously: let the reason arrive.
            pause(Duration::from_millis(300));
            panic!("exchange: {e}\n{}", self.logs())
        });
        assert_eq!(got, payload, "{}", self.logs());
    }

    /// The application connection is closed with nothing echoed, and the service received no
    /// byte. A raw-framing egress opens its service connection as soon as its handshake is
    /// done (a server-speaks-first protocol needs it), so when it is the ingress that refuses
    /// the egress, the service sees a connection that closes empty; an egress that refuses
    /// the ingress, and any multiplexed tunnel, never connects to the service at all.
    fn assert_refused(&self) {
        let (connections, bytes) = (self.echo.connections(), self.echo.bytes());
        let got = exchange(self.ingress_port, b"must never reach the service").unwrap_or_default();
        assert_eq!(got, b"", "{}", self.logs());
        assert_eq!(
            self.echo.bytes(),
            bytes,
            "the service received bytes although attestation failed\n{}",
            self.logs()
        );
        if self.multiplex || self.egress_verifies {
            assert_eq!(
                self.echo.connections(),
                connections,
                "the service was connected although attestation failed\n{}",
                self.logs()
            );
        }
    }

    /// How many log lines contain `needle` once `expected` of them have appeared (the log
    /// writer is asynchronous), or after a short grace period when fewer ever do.
    fn settled_count(&self, ingress: bool, needle: &str, expected: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = if ingress {
                self.ingress.log()
            } else {
                self.egress.log()
            };
            let seen = count(&log, needle);
            if seen >= expected || Instant::now() >= deadline {
                return seen;
            }
            pause(Duration::from_millis(50));
        }
    }

    fn wait_log(&self, ingress: bool, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = if ingress {
                self.ingress.log()
            } else {
                self.egress.log()
            };
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {} log line containing {needle:?}\n{}",
                if ingress { "ingress" } else { "egress" },
                self.logs()
            );
            pause(Duration::from_millis(50));
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

// ---------------------------------------------------------------------------------------------
// The role matrix, ours ↔ ours

fn roles_both_framings(roles: Roles, passport: bool) {
    let stack = Stack::start();
    let (ingress_ra, egress_ra) = stack.ra(roles, passport);
    for multiplex in [false, true] {
        let pair = Pair::start(&ingress_ra, &egress_ra, multiplex, None, None);
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        pair.assert_echo(&payload);
        pair.assert_echo(b"second connection, same certificates");
        assert_eq!(pair.echo.connections(), 2, "{}", pair.logs());
        // Each verifier verified each certificate once: the second connection used the
        // cached verdict (raw framing) or the pooled connection (multiplexed).
        let verifying_ingress = matches!(roles, Roles::ServerAttested | Roles::Both);
        let verifying_egress = matches!(roles, Roles::ClientAttested | Roles::Both);
        for (verifies, ingress) in [(verifying_ingress, true), (verifying_egress, false)] {
            let expected = usize::from(verifies);
            assert_eq!(
                pair.settled_count(ingress, "peer attestation verified", expected),
                expected,
                "multiplex {multiplex}\n{}",
                pair.logs()
            );
        }
    }
    if roles != Roles::NoRa && !passport {
        assert!(
            stack
                .service
                .proc
                .log()
                .contains("POST /attestation -> 200"),
            "background check appraised nothing:\n{}",
            stack.service.proc.log_tail(20)
        );
    }
}

#[test]
fn no_ra_both_framings() {
    roles_both_framings(Roles::NoRa, false);
}

#[test]
fn server_attested_background_check() {
    roles_both_framings(Roles::ServerAttested, false);
}

#[test]
fn server_attested_passport() {
    roles_both_framings(Roles::ServerAttested, true);
}

#[test]
fn client_attested_background_check() {
    roles_both_framings(Roles::ClientAttested, false);
}

#[test]
fn client_attested_passport() {
    roles_both_framings(Roles::ClientAttested, true);
}

#[test]
fn mutually_attested_background_check() {
    roles_both_framings(Roles::Both, false);
}

#[test]
fn mutually_attested_passport() {
    roles_both_framings(Roles::Both, true);
}

// ---------------------------------------------------------------------------------------------
// Fail closed

#[test]
fn attestation_service_down_delivers_nothing_and_recovers() {
    let mut stack = Stack::start();
    let (ingress_ra, egress_ra) = stack.ra(Roles::ServerAttested, false);
    for multiplex in [false, true] {
        let pair = Pair::start(&ingress_ra, &egress_ra, multiplex, None, None);
        stack.service.stop();
        pair.assert_refused();
        let line = pair.wait_log(true, "refused: attestation service unreachable");
        assert!(
            line.contains(&format!(
                "closing the application connection: attestation of 127.0.0.1:{} refused: \
                 attestation service unreachable: POST {}/attestation: ",
                pair.egress_port,
                stack.service.url()
            )),
            "{line}"
        );
        assert!(line.contains("WARN"), "{line}");
        let reason = [("reason", "service_unavailable")];
        let failures = pair
            .ingress
            .metric("tng_attestation_failures_total", &reason);
        assert!(failures >= 1.0, "multiplex {multiplex}: {failures}");
        stack.service.restart();
        pair.assert_echo(b"the AS is back");
        let verified = [("result", "success")];
        assert_eq!(
            pair.ingress
                .metric("tng_attestation_verifications_total", &verified),
            1.0,
            "multiplex {multiplex}"
        );
    }
}

#[test]
fn egress_verifier_with_the_service_down_forwards_nothing() {
    let mut stack = Stack::start();
    let (ingress_ra, egress_ra) = stack.ra(Roles::ClientAttested, false);
    let pair = Pair::start(&ingress_ra, &egress_ra, false, None, None);
    stack.service.stop();
    pair.assert_refused();
    let line = pair.wait_log(false, "ingress attestation refused: ");
    assert!(
        line.contains(&format!(
            "ingress attestation refused: attestation service unreachable: POST {}/attestation: ",
            stack.service.url()
        )),
        "{line}"
    );
}

#[test]
fn unattested_egress_receives_zero_bytes_from_our_verifying_ingress() {
    let stack = Stack::start();
    for multiplex in [false, true] {
        let pair = Pair::start(
            &json!({"verify": stack.verify(false)}),
            &json!({"no_ra": true}),
            multiplex,
            None,
            None,
        );
        pair.assert_refused();
        pair.wait_log(
            true,
            "refused: CertExtractExtensionFailed: the certificate has no evidence extension \
             2.23.133.5.4.9 (is the peer configured with `attest`?)",
        );
    }
}

#[test]
fn contraindicating_policy_is_refused_with_the_reason() {
    let aa = Aa::start(&[]);
    let service = As::start(&[("strict", CONTRAINDICATING_POLICY)], &[]);
    let pair = Pair::start(
        &json!({"verify": {"as_addr": service.url(), "policy_ids": ["strict"]}}),
        &json!({"attest": {"aa_addr": aa.addr()}}),
        false,
        None,
        None,
    );
    pair.assert_refused();
    pair.wait_log(
        true,
        &format!(
            "attestation of 127.0.0.1:{} refused: submodule cpu0 status is contraindicated",
            pair.egress_port
        ),
    );
}

#[test]
fn tampered_evidence_is_refused_with_the_reason() {
    let aa = Aa::start(&["--wrong-report-data"]);
    let service = As::start(&[], &[]);
    let pair = Pair::start(
        &json!({"verify": {"as_addr": service.url(), "policy_ids": ["default"]}}),
        &json!({"attest": {"aa_addr": aa.addr()}}),
        false,
        None,
        None,
    );
    pair.assert_refused();
    let line = pair.wait_log(true, "refused: attestation service POST");
    assert!(line.contains("422"), "{line}");
    assert!(line.contains("AS.EVIDENCE.BINDING_MISMATCH"), "{line}");
}

#[test]
fn model_mismatch_is_refused_with_the_reason() {
    let stack = Stack::start();
    let pair = Pair::start(
        &json!({"verify": stack.verify(false)}),
        &json!({"attest": stack.attest(true)}),
        false,
        None,
        None,
    );
    pair.assert_refused();
    pair.wait_log(
        true,
        "refused: model mismatch: the verifier expects background-check evidence, \
         the certificate carries a passport token",
    );
}

#[test]
fn verifying_egress_refuses_an_ingress_without_a_certificate() {
    let stack = Stack::start();
    let pair = Pair::start(
        &json!({"no_ra": true}),
        &json!({"verify": stack.verify(false)}),
        false,
        None,
        None,
    );
    pair.assert_refused();
    pair.wait_log(false, "TLS handshake failed: peer sent no certificates");
}

// ---------------------------------------------------------------------------------------------
// Rotation under load

#[test]
fn refresh_interval_3_rotates_with_zero_failed_connections() {
    let stack = Stack::start();
    let mut attest = stack.attest(false);
    attest["refresh_interval"] = json!(3);
    for multiplex in [false, true] {
        let pair = Pair::start(
            &json!({"verify": stack.verify(false)}),
            &json!({"attest": attest}),
            multiplex,
            None,
            None,
        );
        let deadline = Instant::now() + Duration::from_secs(8);
        let failures = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (failures, done, port) = (failures.clone(), done.clone(), pair.ingress_port);
                thread::spawn(move || {
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let payload = format!("worker {w} request {i}");
                        match exchange(port, payload.as_bytes()) {
                            Ok(got) if got == payload.as_bytes() => {}
                            _ => {
                                failures.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                        i += 1;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        let rotations = pair.settled_count(false, "attested certificate rotated", 2);
        println!(
            "multiplex {multiplex}: {} connections, {} failed, {rotations} rotations",
            done.load(Ordering::SeqCst),
            failures.load(Ordering::SeqCst)
        );
        assert_eq!(failures.load(Ordering::SeqCst), 0, "{}", pair.logs());
        assert!(done.load(Ordering::SeqCst) > 20, "{}", pair.logs());
        assert!(rotations >= 2, "{rotations} rotations\n{}", pair.logs());
        if !multiplex {
            // New connections picked up the new certificates: each was verified once.
            assert!(
                pair.settled_count(true, "peer attestation verified", 2) >= 2,
                "{}",
                pair.logs()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Interop with upstream 2.12.0 through the sample stack

fn interop(upstream_side_is_egress: bool, roles: Roles, passport: bool) {
    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    let stack = Stack::start();
    let (ingress_ra, egress_ra) = stack.ra(roles, passport);
    for multiplex in [false, true] {
        let (ui, ue) = if upstream_side_is_egress {
            (None, Some(&upstream))
        } else {
            (Some(&upstream), None)
        };
        let pair = Pair::start(&ingress_ra, &egress_ra, multiplex, ui, ue);
        pair.assert_echo(b"through upstream 2.12.0");
        pair.assert_echo(b"and once more");
        let we_verify = match roles {
            Roles::ServerAttested => upstream_side_is_egress,
            Roles::ClientAttested => !upstream_side_is_egress,
            _ => true,
        };
        if we_verify {
            // The log writer is asynchronous: the echo can come back before the line is out.
            pair.wait_log(upstream_side_is_egress, "peer attestation verified");
        }
    }
}

#[test]
fn interop_ours_verify_upstream_2_12_0_attest_background_check() {
    interop(true, Roles::ServerAttested, false);
}

#[test]
fn interop_upstream_2_12_0_verify_ours_attest_background_check() {
    interop(false, Roles::ServerAttested, false);
}

#[test]
fn interop_ours_verify_upstream_2_12_0_attest_passport() {
    interop(true, Roles::ServerAttested, true);
}

#[test]
fn interop_upstream_2_12_0_verify_ours_attest_passport() {
    interop(false, Roles::ServerAttested, true);
}

#[test]
fn interop_client_attestation_ours_egress_verifies_upstream_2_12_0_ingress() {
    interop(false, Roles::ClientAttested, false);
}

#[test]
fn interop_client_attestation_upstream_2_12_0_egress_verifies_our_ingress() {
    interop(true, Roles::ClientAttested, false);
}

/// Documents upstream's leak (spec §3.2): a 2.12 ingress with `verify` in raw framing sends
/// the application's first bytes to an egress it has not verified. Ours sends none (above).
#[test]
fn upstream_2_12_0_verifying_ingress_leaks_the_first_bytes_to_an_unattested_egress() {
    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    let stack = Stack::start();
    let pair = Pair::start(
        &json!({"verify": stack.verify(false)}),
        &json!({"no_ra": true}),
        false,
        Some(&upstream),
        None,
    );
    let payload = b"the first request of the application";
    let got = exchange(pair.ingress_port, payload).unwrap_or_default();
    assert_eq!(got, b"", "upstream did refuse the egress\n{}", pair.logs());
    let deadline = Instant::now() + Duration::from_secs(5);
    while pair.echo.bytes() < payload.len() as u64 && Instant::now() < deadline {
        pause(Duration::from_millis(50));
    }
    assert_eq!(
        pair.echo.bytes(),
        payload.len() as u64,
        "upstream 2.12.0 delivered the first request to the unverified egress's service\n{}",
        pair.logs()
    );
}
