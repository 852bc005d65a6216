//! `mapping_udp` against upstream TNG 2.12.0 on loopback: our ingress → their egress and their
//! ingress → our egress, byte-exact echo of small and 1162-byte datagrams, without attestation
//! and attested through the sample stack (background check and passport, the egress attesting
//! and the ingress verifying, and the reverse). `netfilter_udp` interop runs in namespaces
//! (`tests/udp_netfilter.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tng_e2e::stack::Stack;
use tng_e2e::udp::*;
use tng_e2e::upstream::{spawn_upstream, upstream_bin};
use tng_e2e::*;

fn upstream(name: &str, config: serde_json::Value) -> Option<Proc> {
    let bin = upstream_bin("2.12.0")?;
    let mut proc = spawn_upstream(&bin, name, &config);
    proc.wait_for_line("All services are ready", Duration::from_secs(20));
    Some(proc)
}

fn check_echo(addr: SocketAddr) {
    let socket = client(Duration::from_millis(1000));
    assert!(roundtrip_eventually(&socket, addr, b"hello", 5));
    let big: Vec<u8> = (0..1162u32).map(|i| i as u8).collect();
    assert!(roundtrip_eventually(&socket, addr, &big, 3));
}

#[test]
fn our_ingress_to_upstream_egress() {
    let echo = UdpEcho::start();
    let egress_port = free_port();
    let Some(mut theirs) = upstream(
        "upstream-udp-egress",
        json!({"add_egress": [mapping_udp_entry(egress_port, echo.port(), &json!({}))]}),
    ) else {
        return;
    };
    let in_port = free_port();
    let _ours = Tng::launch_named(
        "udp-ingress",
        json!({"add_ingress": [mapping_udp_entry(in_port, egress_port, &json!({}))]}),
    );
    check_echo(SocketAddr::from(([127, 0, 0, 1], in_port)));
    theirs.wait_for_line(
        "Accepted QUIC connection from ingress",
        Duration::from_secs(5),
    );
}

#[test]
fn upstream_ingress_to_our_egress() {
    let echo = UdpEcho::start();
    let egress_port = free_port();
    let ours = Tng::launch_named(
        "udp-egress",
        json!({"add_egress": [mapping_udp_entry(egress_port, echo.port(), &json!({}))]}),
    );
    let in_port = free_port();
    let Some(_theirs) = upstream(
        "upstream-udp-ingress",
        json!({"add_ingress": [mapping_udp_entry(in_port, egress_port, &json!({}))]}),
    ) else {
        return;
    };
    check_echo(SocketAddr::from(([127, 0, 0, 1], in_port)));
    ours.wait_for_log(
        "Accepted QUIC connection from ingress",
        Duration::from_secs(5),
    );
}

/// One attested pair, `upstream_is_egress` choosing which side is theirs; `ingress_ra` and
/// `egress_ra` are the entries' attestation fields. Ours must log its verification.
fn attested(upstream_is_egress: bool, ingress_ra: serde_json::Value, egress_ra: serde_json::Value) {
    let echo = UdpEcho::start();
    let (egress_port, in_port) = (free_port(), free_port());
    let egress_config =
        json!({"add_egress": [mapping_udp_entry(egress_port, echo.port(), &egress_ra)]});
    let ingress_config =
        json!({"add_ingress": [mapping_udp_entry(in_port, egress_port, &ingress_ra)]});
    let (ours, _theirs) = if upstream_is_egress {
        let Some(theirs) = upstream("upstream-udp-egress", egress_config) else {
            return;
        };
        (Tng::launch_named("udp-ingress", ingress_config), theirs)
    } else {
        let ours = Tng::launch_named("udp-egress", egress_config);
        let Some(theirs) = upstream("upstream-udp-ingress", ingress_config) else {
            return;
        };
        (ours, theirs)
    };
    check_echo(SocketAddr::from(([127, 0, 0, 1], in_port)));
    // Where upstream is the verifier, the echo is the proof: it refuses an unverified peer.
    let ours_ra = if upstream_is_egress {
        &ingress_ra
    } else {
        &egress_ra
    };
    let we_verify = ours_ra.get("verify").is_some();
    if we_verify {
        ours.wait_for_log("peer attestation verified", Duration::from_secs(5));
    }
}

#[test]
fn our_ingress_verifies_upstream_2_12_0_egress_background_check() {
    let stack = Stack::start();
    attested(
        true,
        json!({"verify": stack.verify(false)}),
        json!({"attest": stack.attest(false)}),
    );
}

#[test]
fn upstream_2_12_0_ingress_verifies_our_egress_passport() {
    let stack = Stack::start();
    attested(
        false,
        json!({"verify": stack.verify(true)}),
        json!({"attest": stack.attest(true)}),
    );
}

#[test]
fn our_egress_verifies_upstream_2_12_0_ingress_background_check() {
    let stack = Stack::start();
    attested(
        false,
        json!({"attest": stack.attest(false)}),
        json!({"verify": stack.verify(false)}),
    );
}

#[test]
fn upstream_2_12_0_egress_verifies_our_ingress_passport() {
    let stack = Stack::start();
    attested(
        true,
        json!({"attest": stack.attest(true)}),
        json!({"verify": stack.verify(true)}),
    );
}
