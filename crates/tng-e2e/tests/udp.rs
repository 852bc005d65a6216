//! `mapping_udp` end to end on loopback, our ingress and egress: byte-exact echo of 10,000
//! datagrams with the loss counted, 100 concurrent flows, idle expiry, recovery after a pause
//! longer than the QUIC idle timeout, the size limit, every attestation role in both models,
//! and the failure cases — each failing one flow only while the instance keeps serving.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tng_e2e::stack::Stack;
use tng_e2e::udp::*;
use tng_e2e::*;

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn ten_thousand_datagrams_echo_byte_exact_with_loss_counted() {
    let echo = UdpEcho::start();
    let pair = udp_pair(echo.port(), json!({}), json!({}));
    let socket = client(Duration::from_millis(500));
    assert!(roundtrip_eventually(
        &socket,
        pair.ingress_addr,
        b"warm-up",
        10
    ));
    // 1162 bytes is what a fresh QUIC path carries in one packet (1200-byte initial MTU).
    let sizes: Vec<usize> = (0..10_000).map(|i| 4 + (i * 7919) % 1159).collect();
    let total = sizes.len();
    let mut seen = vec![false; total];
    let (mut sent, mut echoed, mut corrupt) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    let mut buf = vec![0u8; 65535];
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    // Windows of 32 in flight: the echo stays close to what one client application does.
    for window in sizes.chunks(32) {
        for (k, size) in window.iter().enumerate() {
            socket
                .send_to(&pattern(sent + k, *size), pair.ingress_addr)
                .expect("send");
        }
        sent += window.len();
        for _ in 0..window.len() {
            let Ok((n, _)) = socket.recv_from(&mut buf) else {
                break;
            };
            let index = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if index < total
                && sizes[index] == n
                && buf[..n] == pattern(index, n)[..]
                && !seen[index]
            {
                seen[index] = true;
                echoed += 1;
            } else {
                corrupt += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let lost = total - echoed;
    println!(
        "[udp] {total} datagrams (4..=1162 bytes) in {elapsed:?}: echoed {echoed}, lost {lost} ({:.3} %), corrupt {corrupt}, backend received {}",
        100.0 * lost as f64 / total as f64,
        echo.received() - 1
    );
    assert_eq!(corrupt, 0, "no datagram may be altered");
    // Loopback loses next to nothing; a few drops under a noisy machine are UDP.
    assert!(lost * 100 <= total, "lost {lost} of {total}");
    assert_eq!(
        count(
            &pair.ingress.log(),
            "Creating QUIC connection for new client"
        ),
        1
    );
}

/// Payload `index` of `size` bytes: the index in the first 4 bytes (when it fits), then a
/// pattern derived from it.
fn pattern(index: usize, size: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(index as u8))
        .collect();
    let head = (index as u32).to_be_bytes();
    let n = size.min(4);
    v[..n].copy_from_slice(&head[..n]);
    v
}

#[test]
fn hundred_concurrent_flows_each_get_their_own_connection() {
    let echo = UdpEcho::start();
    let pair = udp_pair(echo.port(), json!({}), json!({}));
    let addr = pair.ingress_addr;
    let threads: Vec<_> = (0..100)
        .map(|i| {
            std::thread::spawn(move || {
                let socket = client(Duration::from_millis(1000));
                let payload = format!("flow {i}");
                (0..3).all(|_| roundtrip_eventually(&socket, addr, payload.as_bytes(), 5))
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 100, "every flow echoes");
    assert_eq!(echo.peers(), 100, "one backend socket per QUIC connection");
    assert_eq!(
        count(
            &pair.ingress.log(),
            "Creating QUIC connection for new client"
        ),
        100
    );
    assert_eq!(
        count(&pair.egress.log(), "Accepted QUIC connection from ingress"),
        100
    );
}

#[test]
fn idle_flow_expires_then_a_new_datagram_dials_again() {
    let echo = UdpEcho::start();
    let idle = json!({"mapping_udp": {"idle_timeout_secs": 1}});
    let pair = udp_pair(echo.port(), idle.clone(), idle);
    let socket = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(&socket, pair.ingress_addr, b"one", 5));
    pair.ingress
        .wait_for_log("(mapping_udp) -> upstream_remote=", Duration::from_secs(5));
    pair.egress.wait_for_log(
        "(mapping_udp) -> upstream_remote=127.0.0.1",
        Duration::from_secs(5),
    );
    assert!(roundtrip_eventually(&socket, pair.ingress_addr, b"two", 5));
    assert_eq!(
        count(
            &pair.ingress.log(),
            "Creating QUIC connection for new client"
        ),
        2
    );
    assert_eq!(
        echo.peers(),
        2,
        "the second connection has its own backend socket"
    );
}

#[test]
fn pause_longer_than_the_quic_idle_timeout_keeps_the_flow() {
    let echo = UdpEcho::start();
    // QUIC idle timeout 600 ms; the flow itself may idle for 30 s.
    let quic = json!({"quic": {"max_idle_timeout_ms": 600}});
    let pair = udp_pair(echo.port(), quic.clone(), quic);
    let socket = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(
        &socket,
        pair.ingress_addr,
        b"before",
        5
    ));
    pause(Duration::from_millis(2000));
    assert_eq!(
        roundtrip(&socket, pair.ingress_addr, b"after").as_deref(),
        Some(&b"after"[..])
    );
    // Keep-alives held the connection: no second handshake.
    assert_eq!(
        count(
            &pair.ingress.log(),
            "Creating QUIC connection for new client"
        ),
        1
    );
}

#[test]
fn flow_recovers_after_the_egress_restarts() {
    let echo = UdpEcho::start();
    let quic = json!({"quic": {"max_idle_timeout_ms": 800}});
    let mut pair = udp_pair(echo.port(), quic.clone(), quic.clone());
    let socket = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(
        &socket,
        pair.ingress_addr,
        b"first",
        5
    ));
    pair.egress.proc.signal("KILL");
    pair.egress.proc.wait_timeout(Duration::from_secs(5));
    pair.egress = Tng::launch_named(
        "udp-egress-again",
        json!({"add_egress": [mapping_udp_entry(pair.egress_port, echo.port(), &quic)]}),
    );
    pause(Duration::from_millis(1500));
    assert!(
        roundtrip_eventually(&socket, pair.ingress_addr, b"again", 5),
        "the same client flow works through the new egress; ingress log:\n{}",
        pair.ingress.log_tail(20)
    );
    assert_eq!(
        count(
            &pair.ingress.log(),
            "Creating QUIC connection for new client"
        ),
        2
    );
}

#[test]
fn max_datagram_size_drops_larger_datagrams_and_logs_them() {
    let echo = UdpEcho::start();
    let pair = udp_pair(
        echo.port(),
        json!({}),
        json!({"quic": {"max_datagram_size": 100}}),
    );
    let socket = client(Duration::from_millis(700));
    assert!(roundtrip_eventually(
        &socket,
        pair.ingress_addr,
        &[7u8; 100],
        5
    ));
    let before = echo.received();
    assert_eq!(roundtrip(&socket, pair.ingress_addr, &[8u8; 150]), None);
    assert_eq!(roundtrip(&socket, pair.ingress_addr, &[9u8; 150]), None);
    assert_eq!(
        echo.received(),
        before,
        "nothing oversized reaches the backend"
    );
    let log = pair.ingress.log();
    assert_eq!(
        count(
            &log,
            "datagram size 150 exceeds max_datagram_size 100: dropped"
        ),
        1,
        "logged once per flow:\n{log}"
    );
    assert!(log.contains("dropped_in_flow=1"), "{log}");
    assert!(roundtrip_eventually(
        &socket,
        pair.ingress_addr,
        b"small",
        3
    ));
}

#[test]
fn attested_roles_in_both_models() {
    let stack = Stack::start();
    for passport in [false, true] {
        let roles: [(&str, Value, Value); 3] = [
            (
                "egress attests, ingress verifies",
                json!({"attest": stack.attest(passport)}),
                json!({"verify": stack.verify(passport)}),
            ),
            (
                "ingress attests, egress verifies",
                json!({"verify": stack.verify(passport)}),
                json!({"attest": stack.attest(passport)}),
            ),
            (
                "both attest and verify",
                json!({"attest": stack.attest(passport), "verify": stack.verify(passport)}),
                json!({"attest": stack.attest(passport), "verify": stack.verify(passport)}),
            ),
        ];
        for (name, egress, ingress) in roles {
            let echo = UdpEcho::start();
            let pair = udp_pair(echo.port(), egress, ingress);
            let socket = client(Duration::from_millis(3000));
            assert!(
                roundtrip_eventually(&socket, pair.ingress_addr, b"attested datagram", 3),
                "{name} (passport {passport}): no echo; ingress:\n{}\negress:\n{}",
                pair.ingress.log_tail(20),
                pair.egress.log_tail(20)
            );
        }
    }
}

/// An ingress with two entries: `bad` first (its own listener) and a working one.
fn two_entry_ingress(
    bad: Value,
    good_out: u16,
    good_extra: &Value,
) -> (Tng, SocketAddr, SocketAddr) {
    let (bad_port, good_port) = (free_port(), free_port());
    let mut bad_entry = bad;
    bad_entry["mapping_udp"]["in"] = json!({"host": "127.0.0.1", "port": bad_port});
    let ingress = Tng::launch_named(
        "udp-ingress-two",
        json!({"add_ingress": [bad_entry, mapping_udp_entry(good_port, good_out, good_extra)]}),
    );
    (
        ingress,
        SocketAddr::from(([127, 0, 0, 1], bad_port)),
        SocketAddr::from(([127, 0, 0, 1], good_port)),
    )
}

#[test]
fn hostname_in_out_fails_that_flow_only() {
    let echo = UdpEcho::start();
    let pair = udp_pair(echo.port(), json!({}), json!({}));
    let bad = json!({"mapping_udp": {"out": {"host": "localhost", "port": pair.egress_port}}, "no_ra": true});
    let (mut ingress, bad_addr, good_addr) = two_entry_ingress(bad, pair.egress_port, &json!({}));
    let socket = client(Duration::from_millis(300));
    for _ in 0..5 {
        assert_eq!(roundtrip(&socket, bad_addr, b"to a name"), None);
    }
    let other = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(&other, good_addr, b"still serving", 5));
    let log = ingress.log();
    assert_eq!(
        count(&log, "is not an IP address and port"),
        1,
        "logged once:\n{log}"
    );
    assert!(
        ingress.proc.try_wait().is_none(),
        "the instance keeps running"
    );
}

#[test]
fn unreachable_egress_fails_that_flow_only() {
    let echo = UdpEcho::start();
    let pair = udp_pair(echo.port(), json!({}), json!({}));
    let nobody = free_port();
    let bad = json!({"mapping_udp": {"out": {"host": "127.0.0.1", "port": nobody}}, "no_ra": true,
                     "quic": {"max_idle_timeout_ms": 700}});
    let (mut ingress, bad_addr, good_addr) = two_entry_ingress(bad, pair.egress_port, &json!({}));
    let socket = client(Duration::from_millis(200));
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(roundtrip(&socket, bad_addr, b"void"), None);
    }
    // While that handshake hangs, another client of the same listener is not held up...
    let other = client(Duration::from_millis(1000));
    assert_eq!(roundtrip(&other, bad_addr, b"void too"), None);
    assert!(start.elapsed() < Duration::from_secs(3));
    // ...and the other entry serves.
    let good = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(&good, good_addr, b"still serving", 5));
    let line = ingress.wait_for_log("UDP flow not tunnelled", Duration::from_secs(5));
    assert!(line.contains("QUIC handshake failed: timed out"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(8);
    while count(&ingress.log(), "UDP flow not tunnelled") < 2 && Instant::now() < deadline {
        pause(Duration::from_millis(100));
    }
    // More datagrams of the failed flows are dropped without another line.
    assert_eq!(roundtrip(&socket, bad_addr, b"void again"), None);
    let log = ingress.log();
    assert_eq!(
        count(&log, "UDP flow not tunnelled"),
        2,
        "once per client flow:\n{log}"
    );
    assert!(
        ingress.proc.try_wait().is_none(),
        "the instance keeps running"
    );
}

#[test]
fn refused_egress_attestation_delivers_zero_datagrams() {
    let stack = Stack::start();
    let echo = UdpEcho::start();
    // The egress does not attest; the ingress demands attestation.
    let pair = udp_pair(
        echo.port(),
        json!({}),
        json!({"verify": stack.verify(false)}),
    );
    let socket = client(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(roundtrip(&socket, pair.ingress_addr, b"secret"), None);
    }
    assert_eq!(echo.received(), 0, "zero datagrams reach the backend");
    pair.ingress
        .wait_for_log("egress attestation refused", Duration::from_secs(5));
    let log = pair.ingress.log();
    assert_eq!(count(&log, "egress attestation refused"), 1, "{log}");
    // The egress serves a client that does not verify.
    let in_port = free_port();
    let other = Tng::launch_named(
        "udp-ingress-plain",
        json!({"add_ingress": [mapping_udp_entry(in_port, pair.egress_port, &json!({}))]}),
    );
    let c = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(
        &c,
        SocketAddr::from(([127, 0, 0, 1], in_port)),
        b"fine",
        5
    ));
    drop(other);
}

#[test]
fn refused_ingress_attestation_delivers_zero_datagrams_and_the_egress_stays_up() {
    let stack = Stack::start();
    let echo = UdpEcho::start();
    // The egress demands a client certificate with evidence; this ingress has none.
    let mut pair = udp_pair(
        echo.port(),
        json!({"verify": stack.verify(false)}),
        json!({}),
    );
    let socket = client(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(roundtrip(&socket, pair.ingress_addr, b"secret"), None);
    }
    assert_eq!(echo.received(), 0, "zero datagrams reach the backend");
    pair.egress
        .wait_for_log("QUIC handshake failed", Duration::from_secs(5));
    // An attested ingress is served by the same egress process.
    let in_port = free_port();
    let good = Tng::launch_named(
        "udp-ingress-attested",
        json!({"add_ingress": [mapping_udp_entry(in_port, pair.egress_port, &json!({"attest": stack.attest(false)}))]}),
    );
    let c = client(Duration::from_millis(2000));
    assert!(roundtrip_eventually(
        &c,
        SocketAddr::from(([127, 0, 0, 1], in_port)),
        b"attested",
        5
    ));
    assert!(pair.egress.proc.try_wait().is_none());
    drop(good);
}
