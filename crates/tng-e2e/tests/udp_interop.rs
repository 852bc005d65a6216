//! `mapping_udp` against upstream TNG 2.12.0 on loopback, no_ra: our ingress → their egress
//! and their ingress → our egress, byte-exact echo of small and 1162-byte datagrams.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tng_e2e::udp::*;
use tng_e2e::upstream::upstream_bin;
use tng_e2e::*;

fn upstream(name: &str, config: serde_json::Value) -> Option<Proc> {
    let bin = upstream_bin("2.12.0")?;
    let dir = test_dir(name);
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    let mut cmd = Command::new(bin);
    cmd.arg("launch")
        .arg("--config-file")
        .arg(&path)
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn(name, cmd, &dir);
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
