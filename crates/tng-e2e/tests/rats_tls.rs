//! The rats-TLS transport end to end, without attestation (`no_ra`): real `tng` processes,
//! the official upstream 2.12.0 and 2.9.0 binaries as peers, the devkit HTTP backend, a TCP
//! echo service, curl, and for the founding topology network namespaces with nginx as an L4
//! (`stream`) proxy.
//!
//! - The matrix: ours ↔ ours, our ingress → upstream egress and upstream ingress → our
//!   egress, multiplex off and on. The full set of checks (multi-MiB GET and POST byte-exact,
//!   SSE chunk by chunk, raw TCP with half-close, 50 concurrent connections) for ours ↔ ours
//!   and 2.12.0, a smaller smoke of the same checks for 2.9.0. Upstream ↔ upstream runs the
//!   same checks as a control of the harness.
//! - Failures: a mismatched `multiplex` fails with one clear log line and delivers zero bytes;
//!   the pool limits bound the streams per TLS connection and the TLS connections (counted at
//!   the egress with `ss`).
//! - Capture modes: ingress mapping, `http_proxy` (CONNECT and absolute-form), `socks5`,
//!   netfilter; egress mapping, netfilter (original destination), `direct_forward`; an
//!   `ohttp` and rats-TLS entries side by side in one process.
//!
//! Upstream binaries missing: with `CI=true` the tests panic, otherwise they print a loud
//! notice and return. Namespace tests need root (a loud SKIP otherwise).

#[path = "netns/mod.rs"]
mod netns;

#[path = "rats_tls/apps.rs"]
mod apps;
#[path = "rats_tls/checks.rs"]
mod checks;
#[path = "rats_tls/pair.rs"]
mod pair;
#[path = "rats_tls/peers.rs"]
mod peers;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::*;

use apps::{echo_exchange, noise, refused_exchange, EchoServer};
use checks::{FULL, SMOKE};
use pair::{entry, framing, mapping, mode_label, Egress, Pair};
use peers::{established_at, Node, Peer};

// ---------------------------------------------------------------------------------------------
// The matrix

fn matrix(ingress: Peer, egress: Peer, multiplex: bool, sizes: checks::Sizes) {
    let Some(p) = Pair::symmetric(ingress, egress, multiplex) else {
        return;
    };
    checks::all(&p, sizes);
}

macro_rules! matrix {
    ($module:ident, $version:literal, $sizes:expr) => {
        mod $module {
            use super::*;
            const V: Peer = Peer::Upstream($version);

            #[test]
            fn our_ingress_to_upstream_egress_raw() {
                matrix(Peer::Ours, V, false, $sizes);
            }

            #[test]
            fn our_ingress_to_upstream_egress_multiplex() {
                matrix(Peer::Ours, V, true, $sizes);
            }

            #[test]
            fn upstream_ingress_to_our_egress_raw() {
                matrix(V, Peer::Ours, false, $sizes);
            }

            #[test]
            fn upstream_ingress_to_our_egress_multiplex() {
                matrix(V, Peer::Ours, true, $sizes);
            }

            /// Control: upstream on both sides passes the same checks, so a failure in a
            /// mixed pair points at our side rather than at the harness.
            #[test]
            fn control_upstream_to_upstream() {
                matrix(V, V, false, $sizes);
                matrix(V, V, true, $sizes);
            }
        }
    };
}

matrix!(v2_12_0, "2.12.0", FULL);
matrix!(v2_9_0, "2.9.0", SMOKE);

#[test]
fn ours_to_ours_raw() {
    matrix(Peer::Ours, Peer::Ours, false, FULL);
}

#[test]
fn ours_to_ours_multiplex() {
    matrix(Peer::Ours, Peer::Ours, true, FULL);
}

// ---------------------------------------------------------------------------------------------
// A mismatched `multiplex`

/// What our ingress logs when the egress refuses its ALPN (alert 120).
fn ingress_mismatch_line(ingress_multiplex: bool) -> String {
    let alpn = if ingress_multiplex { "h2" } else { "rats-tls" };
    format!(
        "ALPN mismatch: the egress does not accept \"{alpn}\" (rats_tls.multiplex: \
         {ingress_multiplex} here); rats_tls.multiplex must be the same on both sides"
    )
}

/// What our egress logs when the ingress offers only the other framing's ALPN.
fn egress_mismatch_line(egress_multiplex: bool) -> String {
    let alpn = if egress_multiplex { "h2" } else { "rats-tls" };
    format!(
        "ALPN mismatch: the ingress does not offer \"{alpn}\" (rats_tls.multiplex: \
         {egress_multiplex} here); rats_tls.multiplex must be the same on both sides"
    )
}

/// The application connections are closed with nothing sent back; the services receive
/// nothing at all (not even a connection); our side says why in one line.
fn mismatch(ingress: Peer, egress: Peer, ingress_multiplex: bool) {
    let Some(p) = Pair::start(
        ingress,
        egress,
        framing(ingress_multiplex),
        framing(!ingress_multiplex),
    ) else {
        return;
    };
    let (back, end) = refused_exchange(p.raw, b"these bytes must never reach the service");
    assert!(back.is_empty(), "raw: got {back:?} ({end})\n{}", p.logs());
    let out = curl(&[&p.url("/must-not-arrive")]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "curl through a mismatched tunnel: {out:?}\n{}",
        p.logs()
    );
    // curl: 52 = empty reply, 56 = connection reset.
    assert!(
        matches!(out.status.code(), Some(52) | Some(56)),
        "curl exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let wait = Duration::from_secs(10);
    if ingress == Peer::Ours {
        let line = p
            .ingress
            .wait_for_log(&ingress_mismatch_line(ingress_multiplex), wait);
        println!("[rats-tls] {}: ingress says: {line}", p.name);
    }
    if egress == Peer::Ours {
        let line = p
            .egress
            .node
            .wait_for_log(&egress_mismatch_line(!ingress_multiplex), wait);
        println!("[rats-tls] {}: egress says: {line}", p.name);
    }
    assert_eq!(p.echo.connections(), 0, "{}", p.logs());
    assert_eq!(p.echo.received(), 0);
    assert_eq!(p.backend.requests(), 0, "{}", p.logs());
}

#[test]
fn mismatched_multiplex_ours_to_ours_fails_clearly_with_zero_bytes() {
    mismatch(Peer::Ours, Peer::Ours, true);
    mismatch(Peer::Ours, Peer::Ours, false);
}

#[test]
fn mismatched_multiplex_against_upstream_2_12_fails_clearly_with_zero_bytes() {
    const V: Peer = Peer::Upstream("2.12.0");
    mismatch(Peer::Ours, V, true);
    mismatch(Peer::Ours, V, false);
    mismatch(V, Peer::Ours, true);
    mismatch(V, Peer::Ours, false);
}

// ---------------------------------------------------------------------------------------------
// Pool limits

/// An application connection through `port` that has proven its stream works (one echo).
fn held_connection(port: u16, i: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the ingress");
    s.set_read_timeout(Some(apps::READ_TIMEOUT)).unwrap();
    let msg = format!("held-{i:03}");
    s.write_all(msg.as_bytes()).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)
        .unwrap_or_else(|e| panic!("held connection {i}: {e}"));
    assert_eq!(back, msg.as_bytes());
    s
}

/// Polls until `count()` equals `want` (TLS connections come and go asynchronously), then
/// asserts it.
fn settle(what: &str, want: usize, count: impl Fn() -> usize, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() != want && Instant::now() < deadline {
        pause(Duration::from_millis(50));
    }
    assert_eq!(count(), want, "{what}\n{}", logs());
}

fn pool_limits(egress: Peer) {
    // Without limits: ten application connections share one TLS connection.
    let Some(p) = Pair::symmetric(Peer::Ours, egress, true) else {
        return;
    };
    let held: Vec<TcpStream> = (0..10).map(|i| held_connection(p.raw, i)).collect();
    settle(
        "10 streams without limits: TLS connections at the egress",
        1,
        || established_at(p.egress.raw),
        || p.logs(),
    );
    drop(held);
    drop(p);

    // Two streams per connection, three connections: six streams fill the pool …
    let limited = json!({"multiplex": true, "multiplex_max_streams_per_connection": 2,
                         "multiplex_max_connections": 3});
    let p = Pair::start(Peer::Ours, egress, limited, framing(true)).expect("binaries checked");
    let mut held: Vec<TcpStream> = (0..6).map(|i| held_connection(p.raw, i)).collect();
    let tls = || established_at(p.egress.raw);
    settle("6 streams, 2 per connection", 3, tls, || p.logs());
    // … a seventh waits: its bytes are not carried while every slot is taken …
    let mut waiting = TcpStream::connect(("127.0.0.1", p.raw)).unwrap();
    waiting.write_all(b"seventh").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 7];
    match waiting.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the 7th connection was served beyond the limits: {other:?}"),
    }
    assert_eq!(p.echo.connections(), 6, "{}", p.logs());
    assert_eq!(tls(), 3, "a 4th TLS connection was opened\n{}", p.logs());
    // … until one ends; then it goes on a freed slot, without a new TLS connection.
    let first = held.remove(0);
    first.shutdown(Shutdown::Both).unwrap();
    drop(first);
    waiting.set_read_timeout(Some(apps::READ_TIMEOUT)).unwrap();
    waiting
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("the 7th connection after a slot freed: {e}\n{}", p.logs()));
    assert_eq!(&buf, b"seventh");
    assert_eq!(tls(), 3, "{}", p.logs());
    assert_eq!(p.echo.connections(), 7);
    if let Node::Ours(_) = &p.ingress {
        let opened = p
            .ingress
            .log()
            .matches("new multiplexed rats-TLS connection")
            .count();
        // The HTTP entry has its own pool, unused here.
        assert_eq!(opened, 3, "{}", p.logs());
    }
}

#[test]
fn pool_limits_are_observed_at_our_egress() {
    pool_limits(Peer::Ours);
}

#[test]
fn pool_limits_are_observed_at_an_upstream_2_12_egress() {
    pool_limits(Peer::Upstream("2.12.0"));
}

// ---------------------------------------------------------------------------------------------
// Capture modes

/// A SOCKS5 CONNECT (no authentication) to `127.0.0.1:dst` through the proxy at `proxy`.
fn socks5_connect(proxy: u16, dst: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).expect("connect to socks5");
    s.set_read_timeout(Some(apps::READ_TIMEOUT)).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [5, 0], "method selection");
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&dst.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..2], &[5, 0], "CONNECT reply {reply:?}");
    s
}

/// An HTTP `CONNECT` to `127.0.0.1:dst` through the proxy at `proxy`; returns the stream
/// after the `200`.
fn http_connect(proxy: u16, dst: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).expect("connect to http_proxy");
    s.set_read_timeout(Some(apps::READ_TIMEOUT)).unwrap();
    let req = format!("CONNECT 127.0.0.1:{dst} HTTP/1.1\r\nhost: 127.0.0.1:{dst}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // Byte by byte: nothing after the head may be consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("CONNECT response head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "CONNECT answered {head:?}"
    );
    s
}

fn proxy_ingresses(multiplex: bool) {
    let rats = framing(multiplex);
    let backend = Backend::start();
    let echo = EchoServer::start();
    let egress = Egress::launch(Peer::Ours, &rats, &backend, &echo);
    let (hp, sp, dead) = (free_port(), free_port(), free_port());
    let filters = json!([{"ip": "127.0.0.1", "port": egress.http},
                         {"ip": "127.0.0.1", "port": egress.raw},
                         {"ip": "127.0.0.1", "port": dead}]);
    let ingress = Tng::launch_named(
        "proxy-ingress",
        json!({"add_ingress": [
            {"http_proxy": {"proxy_listen": {"host": "127.0.0.1", "port": hp},
                            "dst_filters": filters}, "no_ra": true, "rats_tls": rats},
            {"socks5": {"proxy_listen": {"host": "127.0.0.1", "port": sp},
                        "dst_filters": filters}, "no_ra": true, "rats_tls": rats},
        ]}),
    );
    let logs = || {
        format!(
            "[{}] ingress:\n{}\negress:\n{}",
            mode_label(multiplex),
            ingress.log_tail(20),
            egress.node.log_tail(20)
        )
    };
    let http_proxy = format!("http://127.0.0.1:{hp}");
    let dst = |path: &str| format!("http://127.0.0.1:{}{path}", egress.http);

    // http_proxy, absolute-form: a GET and a 1 MiB POST echoed exactly.
    let r = curl_status(&["-x", &http_proxy, &dst("/proxy/absolute?x=1")]);
    assert_eq!(r.status, 200, "{}", logs());
    assert_eq!(r.text(), "hello from backend: GET /proxy/absolute");
    let body = noise(7, 1 << 20);
    let file = test_dir("proxy-body").join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let at_file = format!("@{}", file.display());
    let r = curl_status(&["-x", &http_proxy, "--data-binary", &at_file, &dst("/echo")]);
    assert_eq!(r.status, 200, "{}", logs());
    assert!(
        r.body == body,
        "absolute-form POST echoed {} bytes",
        r.body.len()
    );
    // The backend sees the origin-form request with the proxied authority as Host.
    assert_eq!(r.header("x-echo-uri"), Some("/echo"));
    assert_eq!(
        r.header("x-echo-host"),
        Some(format!("127.0.0.1:{}", egress.http).as_str())
    );

    // http_proxy, CONNECT: HTTP inside (curl -p), then a non-HTTP byte stream with half-close.
    let r = curl_status(&["-p", "-x", &http_proxy, &dst("/proxy/connect")]);
    assert_eq!(r.status, 200, "{}", logs());
    assert_eq!(r.text(), "hello from backend: GET /proxy/connect");
    let data = noise(11, 300_000);
    let back = echo_exchange(http_connect(hp, egress.raw), &data)
        .unwrap_or_else(|e| panic!("CONNECT echo: {e}\n{}", logs()));
    assert!(back == data, "CONNECT echo: {} bytes back", back.len());

    // socks5: curl's HTTP, then a raw byte stream with half-close.
    let r = curl_status(&[
        "--socks5",
        &format!("127.0.0.1:{sp}"),
        &dst("/proxy/socks5"),
    ]);
    assert_eq!(r.status, 200, "{}", logs());
    assert_eq!(r.text(), "hello from backend: GET /proxy/socks5");
    let data = noise(13, 300_000);
    let back = echo_exchange(socks5_connect(sp, egress.raw), &data)
        .unwrap_or_else(|e| panic!("socks5 echo: {e}\n{}", logs()));
    assert!(back == data, "socks5 echo: {} bytes back", back.len());

    // No egress behind a tunnelled destination: the proxy client gets a 502 naming why
    // (absolute-form: in the body; CONNECT: curl shows only the status, the log the reason).
    let url = format!("http://127.0.0.1:{dead}/nowhere");
    let out = curl(&["-o", "-", "-w", "\n%{http_code}", "-x", &http_proxy, &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    assert_eq!(code, "502", "absolute-form: {text}\n{}", logs());
    assert!(
        body.contains("TunnelOpenFailed") && body.contains(&format!("127.0.0.1:{dead}")),
        "absolute-form: 502 without its reason: {body}"
    );
    let out = curl(&["-w", "%{http_connect}", "-p", "-x", &http_proxy, &url]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "502",
        "CONNECT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ingress.wait_for_log(
        &format!("tunnel not opened: cannot connect to 127.0.0.1:{dead}"),
        Duration::from_secs(5),
    );

    assert_eq!(backend.requests(), 4, "{}", logs());
    assert_eq!(echo.connections(), 2);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn http_proxy_and_socks5_ingress_raw() {
    proxy_ingresses(false);
}

#[test]
fn http_proxy_and_socks5_ingress_multiplex() {
    proxy_ingresses(true);
}

/// `direct_forward` on a rats-TLS egress: a matching plain HTTP request goes to the service
/// untouched, a non-matching one meets the TLS server (upstream's `decode_error` alert), and
/// the tunnel keeps working, promptly (the sniffer must not wait for an HTTP head that a TLS
/// ClientHello never completes).
#[test]
fn direct_forward_on_a_rats_tls_egress() {
    for multiplex in [false, true] {
        let rats = framing(multiplex);
        let backend = Backend::start();
        let echo = EchoServer::start();
        let egress = Egress::launch_with(
            Peer::Ours,
            &rats,
            &backend,
            &echo,
            json!({"direct_forward": [{"http_path": "^/healthz"}]}),
        );
        let port = free_port();
        let ingress = Tng::launch_named(
            "df-ingress",
            json!({"add_ingress": [entry(port, egress.http, &rats)]}),
        );
        let logs = || format!("{}\n{}", ingress.log_tail(20), egress.node.log_tail(20));
        let addr = format!("127.0.0.1:{}", egress.http);

        let r = raw_http(
            &addr,
            b"GET /healthz?probe=1 HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{}", logs());
        assert_eq!(r.text(), "hello from backend: GET /healthz");

        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /other HTTP/1.1\r\nhost: h\r\n\r\n")
            .unwrap();
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
        assert_eq!(
            back,
            [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32],
            "non-matching plain HTTP: expected a decode_error alert\n{}",
            logs()
        );

        for i in 0..3 {
            let started = Instant::now();
            let r = curl_status(&[&format!("http://127.0.0.1:{port}/tunnelled/{i}")]);
            let took = started.elapsed();
            assert_eq!(r.status, 200, "{}", logs());
            assert_eq!(r.text(), format!("hello from backend: GET /tunnelled/{i}"));
            assert!(
                took < Duration::from_secs(3),
                "[{}] a tunnelled request took {took:?} with direct_forward configured\n{}",
                mode_label(multiplex),
                logs()
            );
        }
        assert_eq!(backend.requests(), 4, "{}", logs());
    }
}

/// One process holding an OHTTP entry beside rats-TLS entries (raw and multiplexed), on
/// both sides.
#[test]
fn ohttp_and_rats_tls_entries_side_by_side_in_one_process() {
    let backend = Backend::start();
    let (e_ohttp, e_raw, e_mux) = (free_port(), free_port(), free_port());
    let (i_ohttp, i_raw, i_mux) = (free_port(), free_port(), free_port());
    let b = backend.port();
    let egress = Tng::launch_named(
        "mixed-egress",
        json!({"add_egress": [
            {"mapping": mapping(e_ohttp, b), "ohttp": {}, "no_ra": true},
            entry(e_raw, b, &framing(false)),
            entry(e_mux, b, &framing(true)),
        ]}),
    );
    let ingress = Tng::launch_named(
        "mixed-ingress",
        json!({"add_ingress": [
            {"mapping": mapping(i_ohttp, e_ohttp), "ohttp": {}, "no_ra": true},
            entry(i_raw, e_raw, &framing(false)),
            entry(i_mux, e_mux, &framing(true)),
        ]}),
    );
    let body = noise(21, 256 << 10);
    let file = test_dir("mixed-body").join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let at_file = format!("@{}", file.display());
    for round in 0..2 {
        for (label, port) in [("ohttp", i_ohttp), ("raw", i_raw), ("multiplex", i_mux)] {
            let path = format!("/{label}/{round}");
            let r = curl_status(&[&format!("http://127.0.0.1:{port}{path}")]);
            assert_eq!(
                r.status,
                200,
                "{label}: {}\n{}",
                ingress.log_tail(20),
                egress.log_tail(20)
            );
            assert_eq!(r.text(), format!("hello from backend: GET {path}"));
            let r = curl_status(&[
                "--data-binary",
                &at_file,
                &format!("http://127.0.0.1:{port}/echo"),
            ]);
            assert_eq!(r.status, 200, "{label}");
            assert!(r.body == body, "{label}: echoed {} bytes", r.body.len());
        }
    }
    assert_eq!(backend.requests(), 12);
    // Only the OHTTP egress serves key configurations.
    assert_eq!(egress.egress_public_keys(0).len(), 1);
    let _ = std::fs::remove_file(&file);
}

// ---------------------------------------------------------------------------------------------
// The founding topology over rats-TLS, in namespaces

/// `iptables-save` of the three namespaces and the client's policy routing.
fn netfilter_snapshot(t: &netns::Topology) -> Vec<String> {
    use netns::Side;
    let mut all: Vec<String> = [Side::Client, Side::Gateway, Side::Server]
        .iter()
        .map(|s| t.iptables_state(*s))
        .collect();
    all.push(t.routing_state(Side::Client));
    all
}

/// client (netfilter ingress, curl) ── gateway (nginx `stream`: an L4 proxy that sees only
/// TLS) ── server (netfilter egress, backends on 8080 and 9090). Each destination port
/// reaches its own backend (the egress's original destination), and the gateway's wire
/// carries no plaintext. Run with each framing; the rules are gone after each SIGTERM.
#[test]
fn founding_topology_over_rats_tls_through_an_l4_nginx() {
    use netns::*;
    if !can_run("founding_topology_over_rats_tls_through_an_l4_nginx") {
        return;
    }
    let topo = Topology::new("rats-founding");
    let t = &topo;
    let baseline = netfilter_snapshot(t);
    let _backend = t.backend(Side::Server, "backend8080", "0.0.0.0:8080");
    let _backend2 = t.backend(Side::Server, "backend9090", "0.0.0.0:9090");
    let (gw, s) = (t.gw_ip, t.server_ip);
    let _nginx = Nginx::start_with_stream(
        t,
        Side::Gateway,
        "nginx",
        "",
        &format!(
            "server {{ listen {gw}:8080; proxy_pass {s}:8080; }}\n\
             server {{ listen {gw}:9090; proxy_pass {s}:9090; }}"
        ),
    );
    let hits = |port: u16| t.backend_requests(Side::Server, &format!("http://127.0.0.1:{port}"));
    let ports = json!([{"port": 8080}, {"port": 9090}]);

    for multiplex in [false, true] {
        let label = mode_label(multiplex);
        let rats = framing(multiplex);
        let mut egress = NsTng::launch(
            t,
            Side::Server,
            &format!("egress-{label}"),
            json!({"add_egress": [{"netfilter": {"capture_dst": ports},
                                   "no_ra": true, "rats_tls": rats}]}),
            7001,
        );
        let mut ingress = NsTng::launch(
            t,
            Side::Client,
            &format!("ingress-{label}"),
            json!({"add_ingress": [{"netfilter": {"capture_dst": ports},
                                    "no_ra": true, "rats_tls": rats}]}),
            7000,
        );
        let logs = || format!("{}\n{}", ingress.log_tail(20), egress.log_tail(20));
        let running = netfilter_snapshot(t);
        assert!(running[0].contains("TNG_INGRESS_0"), "{}", running[0]);
        assert!(running[2].contains("TNG_EGRESS_0"), "{}", running[2]);

        let dump = Tcpdump::start(t, Side::Gateway);
        let (h1, h2) = (hits(8080), hits(9090));
        let marker = format!("rats-founding-secret-{}-{label}", t.n);
        let r = t.http(
            Side::Client,
            &[&format!("http://{gw}:8080/founding/{label}")],
        );
        assert_eq!(r.status, 200, "{r:?}\n{}", logs());
        assert_eq!(r.body, format!("hello from backend: GET /founding/{label}"));
        let r = t.http(
            Side::Client,
            &["--data-binary", &marker, &format!("http://{gw}:8080/echo")],
        );
        assert_eq!(r.status, 200, "{r:?}\n{}", logs());
        assert_eq!(r.body, marker);
        let r = t.http(Side::Client, &[&format!("http://{gw}:9090/other-port")]);
        assert_eq!(r.status, 200, "{r:?}\n{}", logs());
        assert_eq!(r.body, "hello from backend: GET /other-port");
        assert_eq!(
            (hits(8080), hits(9090)),
            (h1 + 2, h2 + 1),
            "each request must reach the backend of its original destination port"
        );
        let pcap = dump.stop(t);
        // The ClientHello's ALPN (raw) or SNI (multiplexed) shows the tunnel crossed nginx.
        let tls_sign = if multiplex {
            "tng.internal"
        } else {
            "rats-tls"
        };
        assert!(
            contains(&pcap, tls_sign),
            "[{label}] no rats-TLS ClientHello crossed the gateway ({} bytes captured)",
            pcap.len()
        );
        for plain in [
            marker.as_str(),
            "hello from backend",
            "/founding/",
            "/other-port",
        ] {
            assert!(
                !contains(&pcap, plain),
                "[{label}] plaintext {plain:?} crossed the gateway"
            );
        }

        assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
        assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
        assert_eq!(
            netfilter_snapshot(t),
            baseline,
            "[{label}] netfilter state after SIGTERM differs from before"
        );
    }
}
