//! The outer leg over TLS (`ohttp.tls` with `tls_ca_certs`): the ingress talks HTTPS to a TLS
//! terminator (a real nginx) in front of the egress, trusting only the CA it was given.

use std::process::Command;

use serde_json::json;
use tng_e2e::certs::server_cert;
use tng_e2e::*;

/// nginx terminating TLS on `port` and proxying to the egress, streaming both ways.
fn tls_terminator(dir: &std::path::Path, port: u16, egress_port: u16) -> Proc {
    let d = dir.display();
    let server = format!(
        "server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n\
         location / {{ proxy_pass http://127.0.0.1:{egress_port}; }}\n  }}"
    );
    tng_e2e::gateways::nginx(dir, &server, port)
}

#[test]
fn ingress_speaks_tls_to_a_terminator_it_trusts_and_refuses_one_it_does_not() {
    if Command::new("nginx").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is required under CI"
        );
        eprintln!("!!! SKIPPING: nginx not installed");
        return;
    }
    let dir = test_dir("outer-tls");
    let certs = server_cert(&dir, "server");
    let backend = Backend::start();
    let egress_port = free_port();
    let _egress = Tng::launch_named(
        "egress",
        json!({"add_egress": [{"mapping": {"in": {"host": "127.0.0.1", "port": egress_port},
                                          "out": {"host": "127.0.0.1", "port": backend.port()}},
                               "ohttp": {}, "no_ra": true}]}),
    );
    let tls_port = free_port();
    let _nginx = tls_terminator(&dir, tls_port, egress_port);

    let trusted_port = free_port();
    let _trusted = Tng::launch_named(
        "ingress-trusted",
        json!({"add_ingress": [{"mapping": {"in": {"host": "127.0.0.1", "port": trusted_port},
                                           "out": {"host": "127.0.0.1", "port": tls_port}},
                                "ohttp": {"tls": true, "tls_ca_certs": [certs.ca]}, "no_ra": true}]}),
    );
    let response = curl_status(&[
        "--data-binary",
        "over tls",
        &format!("http://127.0.0.1:{trusted_port}/echo"),
    ]);
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "over tls")
    );
    let access = std::fs::read_to_string(dir.join("logs/access.log")).unwrap_or_default();
    assert!(
        access.contains("\"POST / HTTP/1.1\""),
        "nginx saw: {access}"
    );
    assert_eq!(backend.requests(), 1);

    // Without our CA the terminator's certificate is not trusted: nothing is sent.
    let untrusted_port = free_port();
    let _untrusted = Tng::launch_named(
        "ingress-untrusted",
        json!({"add_ingress": [{"mapping": {"in": {"host": "127.0.0.1", "port": untrusted_port},
                                           "out": {"host": "127.0.0.1", "port": tls_port}},
                                "ohttp": {"tls": true}, "no_ra": true}]}),
    );
    let response = curl_status(&[
        "--data-binary",
        "secret",
        &format!("http://127.0.0.1:{untrusted_port}/echo"),
    ]);
    assert_eq!(response.status, 502);
    let body = response.json();
    assert_eq!(body["code"], "CreateOHttpClientFailed");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("UnknownIssuer"),
        "{body}"
    );
    assert_eq!(backend.requests(), 1);
}
