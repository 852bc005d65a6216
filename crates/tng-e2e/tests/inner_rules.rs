//! The message rules both gateways apply (RFC 9112 §3.2, §6.3; RFC 9292 §3.8): what the
//! egress does with inner requests our ingress never produces (sealed here with the real
//! protocol code), what the ingress does with plain requests, and that proxy-scoped headers
//! never leave the ingress. Every refusal is exact (status, code) and reaches no service.

use std::time::Duration;

use serde_json::json;
use tng_e2e::sealed::{Inner, SealedClient};
use tng_e2e::*;

struct Fixture {
    backend: Backend,
    t: Tunnel,
    client: SealedClient,
}

fn fixture() -> Fixture {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let client = SealedClient::fetch(&t.egress_addr());
    Fixture { backend, t, client }
}

impl Fixture {
    /// Sends `inner` and asserts the sealed refusal `status` + `code`, and that the service
    /// saw nothing.
    fn refused(&self, what: &str, inner: Inner, status: u16, code: &str) {
        let before = self.backend.requests();
        let answer = self.client.send(&inner);
        assert_eq!(answer.outer.status, 200, "{what}: {}", answer.outer.text());
        let inner = answer
            .inner
            .unwrap_or_else(|| panic!("{what}: not sealed: {}", answer.outer.text()));
        assert_eq!(inner.status, status, "{what}: {}", inner.text());
        assert_eq!(inner.json()["code"], code, "{what}: {}", inner.text());
        assert_eq!(
            self.backend.requests(),
            before,
            "{what}: the request reached the service"
        );
        println!("[inner] {what}: {status} {code}");
    }

    fn served(&self, inner: Inner) -> tng_e2e::sealed::InnerResponse {
        let answer = self.client.send(&inner);
        answer
            .inner
            .unwrap_or_else(|| panic!("not sealed: {}", answer.outer.text()))
    }
}

#[test]
fn invalid_inner_content_length_is_refused_with_400() {
    let f = fixture();
    for (what, values) in [
        ("differing duplicates", &["10", "20"][..]),
        ("a list of differing values", &["10, 20"]),
        ("non-numeric", &["ten"]),
        ("negative", &["-1"]),
    ] {
        let mut inner = Inner::get("/echo");
        for v in values {
            inner = inner.header("content-length", v);
        }
        f.refused(what, inner, 400, "InvalidContentLength");
    }
    // A GET declaring content it does not carry: the service would wait for it.
    f.refused(
        "GET with content-length 10 and no content",
        Inner::get("/echo").header("content-length", "10"),
        400,
        "ContentLengthMismatch",
    );
    // Content longer than declared: the rest would be a second request to the service.
    f.refused(
        "POST with content-length 3 and 10 bytes",
        Inner::get("/echo")
            .method("POST")
            .header("content-length", "3")
            .body(b"0123456789"),
        400,
        "ContentLengthMismatch",
    );
    f.refused(
        "POST with content-length 20 and 10 bytes",
        Inner::get("/echo")
            .method("POST")
            .header("content-length", "20")
            .body(b"0123456789"),
        400,
        "ContentLengthMismatch",
    );
    // Equal values are one value (RFC 9110 §8.6), and forwarded as one.
    let r = f.served(
        Inner::get("/echo")
            .method("POST")
            .header("content-length", "5, 5")
            .header("content-length", "5")
            .body(b"hello"),
    );
    assert_eq!((r.status, r.text()), (200, "hello".to_string()));
}

#[test]
fn get_with_content_carries_the_content() {
    // Decided per RFC 9110 §9.3.1: content in a GET has no defined meaning but is the
    // client's to send; the egress frames it (chunked) instead of dropping it.
    let f = fixture();
    let r = f.served(
        Inner::get("/echo")
            .header("transfer-encoding", "chunked")
            .body(b"abc")
            .body(b"def"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "abcdef");
    assert_eq!(
        r.headers.get("x-echo-method").map(|v| v.as_bytes()),
        Some(&b"GET"[..])
    );
    // And through the ingress, from curl.
    let out = curl_status(&[
        "-X",
        "GET",
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        "from curl",
        &f.t.url("/echo"),
    ]);
    assert_eq!((out.status, out.text()), (200, "from curl".to_string()));
}

#[test]
fn host_rules_on_inner_requests() {
    let f = fixture();
    f.refused(
        "two Host lines",
        Inner::get("/echo").header("host", "other"),
        400,
        "InvalidHost",
    );
    f.refused(
        "no Host",
        Inner::get("/echo").without("host"),
        400,
        "MissingHost",
    );
    for bad in ["a b", "user@service", "service:port"] {
        f.refused(
            &format!("invalid Host {bad:?}"),
            Inner::get("/echo").without("host").header("host", bad),
            400,
            "InvalidHost",
        );
    }
    // An absolute-form (authority-carrying) request: the authority replaces Host.
    let mut inner = Inner::get("/echo");
    inner.authority = "target.example:8443".into();
    let r = f.served(inner);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("x-echo-host").map(|v| v.as_bytes()),
        Some(&b"target.example:8443"[..])
    );
}

#[test]
fn inner_targets_are_carried_exactly_or_refused() {
    let f = fixture();
    let r = f.served(Inner::get("*").method("OPTIONS"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from backend: OPTIONS *");
    for (what, method, path) in [
        ("no leading slash", "GET", "echo"),
        ("empty", "GET", ""),
        ("absolute URI as path", "GET", "http://elsewhere/echo"),
        ("asterisk for GET", "GET", "*"),
        ("space in path", "GET", "/a b"),
    ] {
        f.refused(
            what,
            Inner::get(path).method(method),
            400,
            "InvalidRequestTarget",
        );
    }
    f.refused(
        "inner CONNECT",
        Inner::get("/").method("CONNECT"),
        501,
        "UpgradeNotSupported",
    );
}

#[test]
fn non_zero_padding_is_refused_and_zero_padding_accepted() {
    let f = fixture();
    let mut padded = Inner::get("/echo");
    padded.padding = vec![0; 32];
    assert_eq!(f.served(padded).status, 200);
    let before = f.backend.requests();
    let mut bad = Inner::get("/echo");
    bad.padding = vec![0, 0, 7];
    let answer = f.client.send(&bad);
    assert_eq!(answer.outer.status, 500, "{}", answer.outer.text());
    let v = answer.outer.json();
    assert_eq!(v["code"], "BhttpError", "{v}");
    assert_eq!(
        v["message"],
        "the decrypted request is not a valid binary HTTP message"
    );
    assert_eq!(f.backend.requests(), before);
    f.t.egress
        .wait_for_log("non-zero padding", Duration::from_secs(10));
}

#[test]
fn outer_error_bodies_name_no_inner_content_or_internal_address() {
    // The service is down: the outer answer says so by code, not where it lives.
    let backend = Backend::start();
    let addr = backend.addr().to_string();
    let t = tunnel(&addr, json!({}), json!({}));
    let client = SealedClient::fetch(&t.egress_addr());
    drop(backend);
    let answer = client.send(&Inner::get("/echo").header("x-secret-name", "v"));
    assert_eq!(answer.outer.status, 502);
    let text = answer.outer.text();
    assert_eq!(
        answer.outer.json(),
        json!({"code": "ConnectUpstreamFailed", "message": "cannot connect to the service"})
    );
    assert!(!text.contains(&addr), "{text}");
    // The ingress relays the code only; the log has the address.
    let r = curl_status(&[&t.url("/echo")]);
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json(),
        json!({"code": "HttpCipherTextBadResponse",
               "message": "the egress answered 502 Bad Gateway (ConnectUpstreamFailed)"})
    );
    t.egress
        .wait_for_log(&format!("at {addr}"), Duration::from_secs(10));
}

#[test]
fn duplicate_api_headers_are_refused() {
    let f = fixture();
    let e = f.t.egress_addr();
    let r = raw_http(
        &e,
        &net::build_post(
            "/",
            &e,
            &[
                ("x-tng-ohttp-api", "/tng/key-config"),
                ("x-tng-ohttp-api", "/tng/tunnel"),
            ],
            b"{}",
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "InvalidOhttpApiHeaderValue");
    assert_eq!(r.header("server"), Some("tng"));
}

#[test]
fn server_header_has_no_version_unless_configured() {
    let backend = Backend::start();
    let (plain, plain_port) = launch_egress(backend.addr(), json!({}));
    let (versioned, versioned_port) =
        launch_egress(backend.addr(), json!({"server_header": "name_version"}));
    let (off, off_port) = launch_egress(backend.addr(), json!({"server_header": "off"}));
    let probe = |port: u16| {
        raw_http(
            &format!("127.0.0.1:{port}"),
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        )
    };
    assert_eq!(probe(plain_port).header("server"), Some("tng"));
    let v = probe(versioned_port);
    let server = v.header("server").unwrap_or_default().to_string();
    assert!(server.starts_with("tng/") && server.len() > 4, "{server:?}");
    assert_eq!(probe(off_port).header("server"), None);
    let (code, stderr) =
        Tng::launch_expect_failure(&json!({"add_egress": [{
            "mapping": {"in": {"host": "127.0.0.1", "port": free_port()}, "out": {"host": "127.0.0.1", "port": 1}},
            "ohttp": {}, "no_ra": true, "server_header": "full"}]}).to_string());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr
            .contains("add_egress[0].server_header: must be \"name\", \"name_version\" or \"off\""),
        "{stderr}"
    );
    drop((plain, versioned, off));
}

/// The ingress side: plain requests from the application.
#[test]
fn ingress_refuses_bad_host_and_replaces_it_for_absolute_form() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let ingress = t.ingress_addr();
    let before = backend.requests();
    for (what, request, code) in [
        (
            "two Host lines",
            "GET /echo HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
            "InvalidHost",
        ),
        (
            "no Host",
            "GET /echo HTTP/1.1\r\nconnection: close\r\n\r\n",
            "MissingHost",
        ),
        (
            "invalid Host",
            "GET /echo HTTP/1.1\r\nhost: u@a\r\nconnection: close\r\n\r\n",
            "InvalidHost",
        ),
        (
            "asterisk for GET",
            "GET * HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            "InvalidRequestTarget",
        ),
    ] {
        let r = raw_http(&ingress, request.as_bytes());
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.json()["code"], code, "{what}");
    }
    assert_eq!(
        backend.requests(),
        before,
        "a refused request was forwarded"
    );
    // Absolute form: the target's authority is the Host the service sees.
    let r = raw_http(
        &ingress,
        b"GET http://target.example:81/echo HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-echo-host"), Some("target.example:81"));
    // HTTP/1.0 may omit Host: the destination is sealed as Host.
    let r = raw_http(&ingress, b"GET /echo HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-echo-host"),
        Some(t.egress_addr().as_str()),
        "HTTP/1.0 without Host"
    );
    // OPTIONS * is carried exactly.
    let r = raw_http(
        &ingress,
        b"OPTIONS * HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from backend: OPTIONS *");
}

#[test]
fn ingress_seals_a_valid_date_on_every_request() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    for (what, extra) in [
        ("unparsable Date", vec!["-H", "date: yesterday"]),
        (
            "Date named by Connection",
            vec![
                "-H",
                "date: Thu, 01 Jan 2026 00:00:00 GMT",
                "-H",
                "connection: date",
            ],
        ),
        ("no Date", vec![]),
    ] {
        let url = t.url("/headers");
        let mut args: Vec<&str> = extra;
        args.push(&url);
        let r = curl_status(&args);
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let v = r.json();
        let date = v["date"].as_str().unwrap_or_default().to_string();
        let parsed = httpdate_parse(&date);
        assert!(parsed.is_some(), "{what}: the service saw Date {date:?}");
    }
}

fn httpdate_parse(text: &str) -> Option<std::time::SystemTime> {
    // The backend's /headers answers each header as a string (or a list of them).
    let now = std::time::SystemTime::now();
    let t = httpdate::parse_http_date(text).ok()?;
    let skew = now.duration_since(t).unwrap_or_else(|e| e.duration());
    (skew < Duration::from_secs(120)).then_some(t)
}

#[test]
fn proxy_credentials_never_leave_the_ingress() {
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(backend.addr(), json!({}));
    // Mapping mode.
    let (mapping, mapping_port) = launch_ingress(
        &format!("127.0.0.1:{egress_port}"),
        json!({"ohttp": {"header_passthrough": {"request_headers": ["proxy-authorization"]}}}),
    );
    let headers = |url: &str, proxy: Option<&str>| {
        let mut args = vec![
            "-H",
            "proxy-authorization: Basic c2VjcmV0OnNlY3JldA==",
            "-H",
            "proxy-connection: keep-alive",
        ];
        if let Some(proxy) = proxy {
            args.extend([
                "-x",
                proxy,
                "--proxy-header",
                "proxy-authorization: Basic c2VjcmV0",
            ]);
        }
        args.push(url);
        let r = curl_status(&args);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let seen = headers(&format!("http://127.0.0.1:{mapping_port}/headers"), None);
    assert!(seen.get("proxy-authorization").is_none(), "mapping: {seen}");
    assert!(seen.get("proxy-connection").is_none(), "mapping: {seen}");
    // http_proxy mode, to a destination that goes through the tunnel.
    let proxy_port = free_port();
    let proxy = Tng::launch_named(
        "proxy",
        json!({"add_ingress": [{
            "http_proxy": {"proxy_listen": {"host": "127.0.0.1", "port": proxy_port},
                           "dst_filters": [{"ip": "127.0.0.1", "port": egress_port}]},
            "ohttp": {}, "no_ra": true}]}),
    );
    let seen = headers(
        &format!("http://127.0.0.1:{egress_port}/headers"),
        Some(&format!("http://127.0.0.1:{proxy_port}")),
    );
    assert!(
        seen.get("proxy-authorization").is_none(),
        "http_proxy: {seen}"
    );
    assert!(seen.get("proxy-connection").is_none(), "http_proxy: {seen}");
    drop((egress, mapping, proxy));
}
