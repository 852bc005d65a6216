//! The client's address at the service: `forward_client_ip` (X-Real-IP / X-Forwarded-For, as
//! upstream 2.10+), the PROXY protocol v2 from a real HAProxy, the application's address
//! sealed by our ingress (`send_client_ip`), and TLS on the egress listener (`ohttp.tls`).
//!
//! Loopback is all of 127.0.0.0/8, so each hop gets its own source address: the application
//! sends from 127.0.0.5, nginx connects from 127.0.0.7, HAProxy from 127.0.0.8.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};
use tng_e2e::certs::server_cert;
use tng_e2e::gateways::{haproxy, nginx};
use tng_e2e::stack::Stack;
use tng_e2e::upstream::{launch_upstream, upstream_bin};
use tng_e2e::*;

const APP: &str = "127.0.0.5";
const NGINX_SOURCE: &str = "127.0.0.7";
const HAPROXY_SOURCE: &str = "127.0.0.8";

/// The request headers the backend received, sent by the application from [`APP`].
fn seen_by_backend(ingress_port: u16, headers: &[&str]) -> Value {
    let url = format!("http://127.0.0.1:{ingress_port}/headers");
    let mut args = vec!["--interface", APP, url.as_str()];
    for h in headers {
        args.extend(["-H", h]);
    }
    let response = curl_status(&args);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// nginx on `port` in front of the egress at `egress_port`, connecting from [`NGINX_SOURCE`].
fn nginx_in_front(name: &str, port: u16, egress_port: u16) -> Proc {
    let server = format!(
        "server {{ listen 127.0.0.1:{port}; location / {{ proxy_bind {NGINX_SOURCE}; \
         proxy_pass http://127.0.0.1:{egress_port}; }} }}"
    );
    nginx(&test_dir(name), &server, port)
}

fn ingress_to(port: u16, extra: Value) -> (Tng, u16) {
    launch_ingress(&format!("127.0.0.1:{port}"), extra)
}

#[test]
fn behind_nginx_the_service_sees_the_hop_exactly_as_upstream_shows_it() {
    let backend = Backend::start();
    let (_ours, our_port) = launch_egress(backend.addr(), json!({}));
    let (_off, off_port) = launch_egress(
        backend.addr(),
        json!({"ohttp": {"forward_client_ip": false}}),
    );
    let nginx_ours = free_port();
    let _n1 = nginx_in_front("nginx-ours", nginx_ours, our_port);
    let nginx_off = free_port();
    let _n2 = nginx_in_front("nginx-off", nginx_off, off_port);
    let (_i1, ours) = ingress_to(nginx_ours, json!({}));
    let (_i2, off) = ingress_to(nginx_off, json!({}));

    let spoofed = ["X-Forwarded-For: 203.0.113.9", "X-Real-IP: 203.0.113.10"];
    let seen = seen_by_backend(ours, &spoofed);
    // The application's own claims stay first in the list, never in X-Real-IP.
    assert_eq!(seen["x-real-ip"], NGINX_SOURCE, "{seen}");
    assert_eq!(
        seen["x-forwarded-for"],
        format!("203.0.113.9, {NGINX_SOURCE}"),
        "{seen}"
    );
    // Two X-Forwarded-For lines form one list (upstream keeps only the first line's value).
    let seen = seen_by_backend(
        ours,
        &[
            "X-Forwarded-For: 203.0.113.1",
            "X-Forwarded-For: 203.0.113.2",
        ],
    );
    assert_eq!(
        seen["x-forwarded-for"],
        format!("203.0.113.1, 203.0.113.2, {NGINX_SOURCE}")
    );
    let seen = seen_by_backend(off, &spoofed);
    assert_eq!(
        (&seen["x-real-ip"], &seen["x-forwarded-for"]),
        (&json!("203.0.113.10"), &json!("203.0.113.9")),
        "forward_client_ip: false leaves the headers alone"
    );

    // The same request through an upstream 2.12.0 egress behind the same kind of nginx.
    let Some(bin) = upstream_bin("2.12.0") else {
        return;
    };
    let up_port = free_port();
    let config = json!({"add_egress": [{"mapping": {"in": {"host": "127.0.0.1", "port": up_port},
        "out": {"host": "127.0.0.1", "port": backend.port()}},
        "ohttp": {"key": {"source": "self_generated", "rotation_interval": 300}}, "no_ra": true}]});
    let _up = launch_upstream(&bin, "egress-2.12.0", &config, up_port);
    let nginx_up = free_port();
    let _n3 = nginx_in_front("nginx-upstream", nginx_up, up_port);
    let (_i3, up) = ingress_to(nginx_up, json!({}));
    let theirs = seen_by_backend(up, &spoofed);
    let ours = seen_by_backend(ours, &spoofed);
    for name in ["x-real-ip", "x-forwarded-for"] {
        assert_eq!(
            ours[name], theirs[name],
            "{name}: ours {ours} upstream {theirs}"
        );
    }
}

#[test]
fn the_application_address_travels_sealed_to_an_egress_that_trusts_it() {
    let backend = Backend::start();
    let (_trusting, trusting_port) = launch_egress(
        backend.addr(),
        json!({"ohttp": {"trust_ingress_client_ip": "always"}}),
    );
    let (_default, default_port) = launch_egress(backend.addr(), json!({}));
    // The outer leg runs through a relay that records every byte.
    let relay = Relay::start(&format!("127.0.0.1:{trusting_port}"));
    let (_i1, sealed) = ingress_to(relay.port(), json!({"ohttp": {"send_client_ip": true}}));
    let (_i2, unattested) = ingress_to(default_port, json!({"ohttp": {"send_client_ip": true}}));
    let (_i3, plain) = ingress_to(trusting_port, json!({}));

    let forged = ["x-tng-client-ip: 203.0.113.66"];
    let seen = seen_by_backend(sealed, &forged);
    assert_eq!(
        (&seen["x-real-ip"], &seen["x-forwarded-for"]),
        (&json!(APP), &json!(APP)),
        "{seen}"
    );
    assert!(seen.get("x-tng-client-ip").is_none(), "{seen}");
    let outer = [relay.upstream(), relay.downstream()].concat();
    assert!(
        tng_e2e::net::find(&outer, APP.as_bytes()).is_none(),
        "the outer leg shows {APP}"
    );
    assert!(tng_e2e::net::find(&outer, b"x-tng-client-ip").is_none());

    // Default trust is "attested": a no_ra ingress's claim is ignored, the TCP peer counts.
    let seen = seen_by_backend(unattested, &[]);
    assert_eq!(seen["x-real-ip"], "127.0.0.1", "{seen}");
    assert!(seen.get("x-tng-client-ip").is_none(), "{seen}");
    // An ingress without send_client_ip never lets the application's own claim through.
    let seen = seen_by_backend(plain, &forged);
    assert_eq!(seen["x-real-ip"], "127.0.0.1", "{seen}");
    assert!(seen.get("x-tng-client-ip").is_none(), "{seen}");
}

#[test]
fn an_attested_ingress_is_believed_by_default() {
    let stack = Stack::start();
    let backend = Backend::start();
    let egress_port = free_port();
    let _egress = Tng::launch_named(
        "egress",
        json!({"add_egress": [{"mapping": {"in": {"host": "127.0.0.1", "port": egress_port},
            "out": {"host": "127.0.0.1", "port": backend.port()}},
            "ohttp": {}, "verify": stack.verify(false)}]}),
    );
    let port = free_port();
    let _ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [{"mapping": {"in": {"host": "127.0.0.1", "port": port},
            "out": {"host": "127.0.0.1", "port": egress_port}},
            "ohttp": {"send_client_ip": true}, "attest": stack.attest(false)}]}),
    );
    let seen = seen_by_backend(port, &["x-tng-client-ip: 203.0.113.66"]);
    assert_eq!(seen["x-real-ip"], APP, "{seen}");
    assert!(seen.get("x-tng-client-ip").is_none(), "{seen}");
}

/// HAProxy on `port` relaying TCP to `to_port` from [`HAPROXY_SOURCE`] with a PROXY v2 header.
fn haproxy_in_front(name: &str, port: u16, to_port: u16) -> Proc {
    let sections = format!(
        "listen lb\n  bind 127.0.0.1:{port}\n  server egress 127.0.0.1:{to_port} send-proxy-v2 source {HAPROXY_SOURCE}\n"
    );
    haproxy(&test_dir(name), &sections, port)
}

/// Sends `bytes` straight to `port` and returns everything the peer answers until it closes.
fn raw_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn proxy_v2_header(claimed: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(claimed);
    h.extend([127, 0, 0, 1]);
    h.extend(40000u16.to_be_bytes());
    h.extend(8080u16.to_be_bytes());
    h
}

#[test]
fn behind_haproxy_the_proxy_protocol_source_replaces_the_balancer() {
    let backend = Backend::start();
    let trusted = format!("{HAPROXY_SOURCE}/32");
    let (egress, egress_port) = launch_egress(
        backend.addr(),
        json!({"proxy_protocol": {"trusted_peers": [trusted]}}),
    );
    let lb_port = free_port();
    let _lb = haproxy_in_front("haproxy", lb_port, egress_port);
    let (_ingress, port) = ingress_to(lb_port, json!({}));
    let seen = seen_by_backend(port, &[]);
    // HAProxy saw the ingress connect from 127.0.0.1; without the header it would be .8.
    assert_eq!(seen["x-real-ip"], "127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    let served = backend.requests();

    // A peer that is not the balancer cannot claim an address, with or without a header.
    let mut forged = proxy_v2_header([203, 0, 113, 9]);
    forged.extend(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw_exchange(egress_port, &forged), b"");
    egress.wait_for_log(
        "connection refused: the peer is not one of proxy_protocol.trusted_peers",
        Duration::from_secs(5),
    );
    assert_eq!(backend.requests(), served);

    // Trusting any peer, a connection without a header is refused before any byte is read
    // as HTTP.
    let (open, open_port) = launch_egress(backend.addr(), json!({"proxy_protocol": true}));
    assert_eq!(
        raw_exchange(open_port, b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n"),
        b""
    );
    open.wait_for_log(
        "connection refused: the connection does not start with a PROXY protocol v2 header",
        Duration::from_secs(5),
    );
    assert_eq!(
        raw_exchange(
            open_port,
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n"
        ),
        b""
    );
    open.wait_for_log(
        "PROXY protocol v1 (text) is not accepted",
        Duration::from_secs(5),
    );
    assert_eq!(backend.requests(), served);
}

#[test]
fn a_rats_tls_egress_accepts_the_proxy_protocol_too() {
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(
        backend.addr(),
        json!({"ohttp": null, "proxy_protocol": true}),
    );
    let lb_port = free_port();
    let _lb = haproxy_in_front("haproxy-rats-tls", lb_port, egress_port);
    let (_ingress, port) = ingress_to(lb_port, json!({"ohttp": null}));
    let response = curl_status(&[
        "--data-binary",
        "raw bytes",
        &format!("http://127.0.0.1:{port}/echo"),
    ]);
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "raw bytes")
    );
    // The same ingress without the balancer: no header, so the egress refuses it.
    let (_direct, direct) = ingress_to(egress_port, json!({"ohttp": null}));
    let out = curl(&[
        "-s",
        "--max-time",
        "10",
        &format!("http://127.0.0.1:{direct}/echo"),
    ]);
    assert!(out.stdout.is_empty());
    egress.wait_for_log(
        "connection refused: the connection does not start with a PROXY protocol v2 header",
        Duration::from_secs(5),
    );
}

#[test]
fn an_egress_serves_https_and_follows_its_certificate_files() {
    let dir = test_dir("egress-tls");
    let first = server_cert(&dir, "first");
    let second = server_cert(&dir, "second");
    let live_cert = dir.join("live.pem");
    let live_key = dir.join("live.key");
    std::fs::copy(&first.cert, &live_cert).unwrap();
    std::fs::copy(&first.key, &live_key).unwrap();
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(
        backend.addr(),
        json!({"ohttp": {"tls": {"cert_file": live_cert, "key_file": live_key}}}),
    );
    let (_ingress, port) = ingress_to(
        egress_port,
        json!({"ohttp": {"tls": true, "tls_ca_certs": [first.ca]}}),
    );
    let response = curl_status(&[
        "--data-binary",
        "sealed in tls",
        &format!("http://127.0.0.1:{port}/echo"),
    ]);
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "sealed in tls")
    );

    if let Some(bin) = upstream_bin("2.12.0") {
        let up_port = free_port();
        let config = json!({"add_ingress": [{"mapping": {"in": {"host": "127.0.0.1", "port": up_port},
            "out": {"host": "127.0.0.1", "port": egress_port}},
            "ohttp": {"tls": true, "tls_ca_certs": [first.ca.display().to_string()]}, "no_ra": true}]});
        let _up = launch_upstream(&bin, "ingress-2.12.0-tls", &config, up_port);
        let response = curl_status(&[
            "--data-binary",
            "from 2.12.0",
            &format!("http://127.0.0.1:{up_port}/echo"),
        ]);
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "from 2.12.0")
        );
    }

    // Renewed files take effect without a restart.
    let probe = |ca: &std::path::Path| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "5", "--cacert"])
            .arg(ca)
            .arg(format!("https://127.0.0.1:{egress_port}/"))
            .output()
            .expect("curl");
        out.status.code()
    };
    assert_eq!(probe(&first.ca), Some(0));
    assert_eq!(
        probe(&second.ca),
        Some(60),
        "not yet trusted by the second CA"
    );
    std::fs::copy(&second.key, &live_key).unwrap();
    std::fs::copy(&second.cert, &live_cert).unwrap();
    egress.wait_for_log("TLS certificate reloaded", Duration::from_secs(15));
    assert_eq!(probe(&second.ca), Some(0));
    assert_eq!(probe(&first.ca), Some(60));

    // A key that does not belong to the certificate: the egress does not start.
    let config = json!({"add_egress": [{"mapping": {"in": {"host": "127.0.0.1", "port": free_port()},
        "out": {"host": "127.0.0.1", "port": backend.port()}}, "no_ra": true,
        "ohttp": {"tls": {"cert_file": first.cert, "key_file": second.key}}}]});
    let (code, stderr) = Tng::launch_expect_failure(&config.to_string());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "add_egress[0].ohttp.tls: cannot use the certificate and key: the key in {} does not belong to the certificate in {}",
            second.key.display(),
            first.cert.display()
        )),
        "{stderr}"
    );
}

#[test]
fn proxy_ingresses_seal_the_address_of_their_client() {
    let backend = Backend::start();
    let (_egress, egress_port) = launch_egress(
        backend.addr(),
        json!({"ohttp": {"trust_ingress_client_ip": "always"}}),
    );
    let (http_port, socks_port) = (free_port(), free_port());
    let filter = json!([{"ip": "127.0.0.1", "port": egress_port}]);
    let _ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [
            {"http_proxy": {"proxy_listen": {"host": "127.0.0.1", "port": http_port}, "dst_filters": filter},
             "ohttp": {"send_client_ip": true}, "no_ra": true},
            {"socks5": {"proxy_listen": {"host": "127.0.0.1", "port": socks_port}, "dst_filters": filter},
             "ohttp": {"send_client_ip": true}, "no_ra": true}]}),
    );
    let url = format!("http://127.0.0.1:{egress_port}/headers");
    let http_proxy = format!("http://127.0.0.1:{http_port}");
    let socks = format!("127.0.0.1:{socks_port}");
    let ways: [&[&str]; 3] = [
        &["-x", &http_proxy],
        &["-x", &http_proxy, "--proxytunnel"],
        &["--socks5", &socks],
    ];
    for way in ways {
        let mut args = vec!["--interface", APP];
        args.extend(way);
        args.push(&url);
        let response = curl_status(&args);
        assert_eq!(response.status, 200, "{way:?}: {}", response.text());
        assert_eq!(response.json()["x-real-ip"], APP, "{way:?}");
    }
}
