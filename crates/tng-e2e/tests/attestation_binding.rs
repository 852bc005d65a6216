//! Runtime-data binding, end to end: an egress whose key-config answer is altered on the way
//! (the key config no longer matches what its evidence was bound to) must be refused, with no
//! request leaving the ingress.

#[path = "attestation/stack.rs"]
mod stack;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use serde_json::json;
use stack::*;
use tng_e2e::*;

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
