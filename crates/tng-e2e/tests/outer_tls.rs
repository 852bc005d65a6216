//! The outer leg over TLS (`ohttp.tls` with `tls_ca_certs`): the ingress talks HTTPS to a TLS
//! terminator (a real nginx) in front of the egress, trusting only the CA it was given.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tng_e2e::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=tng-e2e-ca",
            "-days",
            "1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    );
}

/// nginx terminating TLS on `port` and proxying to the egress, streaming both ways.
fn tls_terminator(dir: &Path, port: u16, egress_port: u16) -> Proc {
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("nginx dirs");
    }
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\nerror_log {d}/logs/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
           fastcgi_temp_path {d}/tmp/fcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n\
             location / {{ proxy_pass http://127.0.0.1:{egress_port}; proxy_http_version 1.1;\n\
               proxy_request_buffering off; proxy_buffering off; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
    let mut cmd = Command::new("nginx");
    cmd.arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let proc = Proc::spawn("nginx-tls", cmd, dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx did not listen: {}",
            proc.log()
        );
        pause(Duration::from_millis(50));
    }
    proc
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
    certificates(&dir);
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
                                "ohttp": {"tls": true, "tls_ca_certs": [dir.join("ca.pem")]}, "no_ra": true}]}),
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
