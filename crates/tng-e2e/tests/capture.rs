//! Transparent capture (netfilter ingress and egress) in real network namespaces, through a
//! real nginx: the founding scenario, capture selection (ports, ranges, ipsets, local
//! traffic), rule lifecycle and the one-instance-per-namespace lock.
//!
//! Needs root (namespaces, iptables, nginx, tcpdump). Not root and `CI` unset: a loud SKIP.
//!
//! ```text
//! client (ingress, curl) ── gateway (nginx :8080/:9090) ── server (egress, backends :8080/:9090)
//! ```

#[path = "netns/mod.rs"]
mod netns;

use netns::*;
use serde_json::json;

const INGRESS_CONTROL: u16 = 7000;
const EGRESS_CONTROL: u16 = 7001;

/// The founding scenario, up and ready. Field order = drop order: processes first, then the
/// namespaces.
struct Founding {
    ingress: NsTng,
    egress: NsTng,
    nginx: Nginx,
    backend: tng_e2e::Proc,
    backend2: tng_e2e::Proc,
    topo: Topology,
}

impl Founding {
    /// Seed configurations verbatim (addresses aside): ingress `capture_dst {"port": 8080}`
    /// with the path rewrite, egress `capture_dst {"port": 8080}` + `capture_local_traffic`.
    fn start(label: &str) -> Founding {
        let topo = Topology::new(label);
        let backend = topo.backend(Side::Server, "backend", "0.0.0.0:8080");
        let backend2 = topo.backend(Side::Server, "backend9090", "0.0.0.0:9090");
        let nginx = gateway_nginx(&topo, "");
        let egress = NsTng::launch(
            &topo,
            Side::Server,
            "egress",
            egress_config(8080, true),
            EGRESS_CONTROL,
        );
        let ingress = NsTng::launch(
            &topo,
            Side::Client,
            "ingress",
            ingress_config(json!({"port": 8080})),
            INGRESS_CONTROL,
        );
        Founding {
            ingress,
            egress,
            nginx,
            backend,
            backend2,
            topo,
        }
    }

    fn gw(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.topo.gw_ip)
    }
}

fn tunnel_requests_in(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("tunnel request opened"))
        .map(str::to_string)
        .collect()
}

#[test]
fn founding_scenario_delivers_and_nginx_sees_only_opaque_posts() {
    if !can_run("founding_scenario_delivers_and_nginx_sees_only_opaque_posts") {
        return;
    }
    let f = Founding::start("cap-founding");
    let t = &f.topo;
    let dump = Tcpdump::start(t, Side::Gateway, "any");

    let header_marker = format!("hdrmark-{}-q7Zx", t.n);
    let body_marker = format!("bodymark-{}-K3vW-secret-payload", t.n);

    let r = t.http(
        Side::Client,
        &[
            "-H",
            &format!("x-marker: {header_marker}"),
            &f.gw(8080, "/foo/bar/baz?q=1"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}\ningress:\n{}", f.ingress.log_tail(20));
    assert_eq!(r.body, "hello from backend: GET /foo/bar/baz");

    let r = t.http(
        Side::Client,
        &[
            "-H",
            "content-type: text/x-secret",
            "--data-binary",
            &body_marker,
            &f.gw(8080, "/echo"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}\ningress:\n{}", f.ingress.log_tail(20));
    assert_eq!(r.body, body_marker);

    let pcap = dump.stop();
    assert!(
        contains(&pcap, "x-tng-ohttp-api"),
        "the capture holds no OHTTP request at all ({} bytes): it proves nothing",
        pcap.len()
    );
    for marker in [
        "/foo/bar/baz",
        "baz?q=1",
        header_marker.as_str(),
        "text/x-secret",
        body_marker.as_str(),
        "hello from backend",
        "/echo",
    ] {
        assert!(
            !contains(&pcap, marker),
            "plaintext {marker:?} crossed the gateway"
        );
    }

    // nginx saw only opaque POSTs, on the rewritten (or default) outer paths.
    let lines = f.nginx.access_lines();
    let entries: Vec<Access> = lines.iter().map(|l| parse_access(l)).collect();
    assert!(!entries.is_empty(), "nginx logged nothing");
    for e in &entries {
        assert_eq!(e.method, "POST", "nginx saw a non-POST: {e:?}\n{lines:#?}");
        match e.api.as_str() {
            "/tng/tunnel" => assert_eq!(e.content_type, "message/ohttp-chunked-req", "{e:?}"),
            "/tng/key-config" => assert_eq!(e.content_type, "application/json", "{e:?}"),
            other => panic!("unexpected x-tng-ohttp-api {other:?}: {e:?}"),
        }
        assert!(
            e.uri == "/foo/bar" || e.uri == "/",
            "outer path {:?} is not the rewritten one: {e:?}",
            e.uri
        );
        assert_eq!(e.status, 200, "{e:?}");
    }
    let tunnel_uris: Vec<&str> = entries
        .iter()
        .filter(|e| e.api == "/tng/tunnel")
        .map(|e| e.uri.as_str())
        .collect();
    assert_eq!(tunnel_uris, ["/foo/bar", "/"], "{lines:#?}");

    // The egress decrypted exactly those two inner requests.
    let opened = tunnel_requests_in(&f.egress.log());
    assert_eq!(opened.len(), 2, "{opened:#?}");
    assert!(opened[0].contains("/foo/bar/baz"), "{opened:#?}");
    assert!(opened[1].contains("/echo"), "{opened:#?}");
}

#[test]
fn port_outside_capture_dst_is_untouched() {
    if !can_run("port_outside_capture_dst_is_untouched") {
        return;
    }
    let f = Founding::start("cap-uncaptured");
    let t = &f.topo;
    let dump = Tcpdump::start(t, Side::Gateway, "any");
    let marker = format!("plainmark-{}-Yh2q", t.n);

    // Port 8080 is captured …
    let r = t.http(Side::Client, &[&f.gw(8080, "/foo/bar/tunnelled")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/bar/tunnelled");
    // … 9090 is not: the request crosses nginx in plaintext to the 9090 backend.
    let path = format!("/foo/{marker}/x");
    let r = t.http(
        Side::Client,
        &["-H", &format!("x-marker: {marker}"), &f.gw(9090, &path)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, format!("hello from backend: GET {path}"));

    let pcap = dump.stop();
    assert!(
        contains(&pcap, &format!("GET {path} HTTP/1.1")),
        "the plain request is not in the capture"
    );
    assert!(contains(&pcap, &format!("hello from backend: GET {path}")));
    assert!(contains(&pcap, "x-tng-ohttp-api"));
    assert!(!contains(&pcap, "/foo/bar/tunnelled"));

    let entries: Vec<Access> = f
        .nginx
        .access_lines()
        .iter()
        .map(|l| parse_access(l))
        .collect();
    let plain: Vec<&Access> = entries.iter().filter(|e| e.port == 9090).collect();
    assert_eq!(plain.len(), 1, "{entries:#?}");
    assert_eq!(plain[0].method, "GET");
    assert_eq!(plain[0].uri, path);
    assert!(entries
        .iter()
        .filter(|e| e.port == 8080)
        .all(|e| e.method == "POST"));

    let opened = tunnel_requests_in(&f.egress.log());
    assert_eq!(opened.len(), 1, "{opened:#?}");
    assert!(opened[0].contains("/foo/bar/tunnelled"));
    assert!(
        !f.ingress.log().contains(&marker) && !f.egress.log().contains(&marker),
        "the uncaptured request went through TNG"
    );
    let _ = (&f.backend, &f.backend2);
}

#[test]
fn capture_local_traffic_decides_for_a_colocated_nginx() {
    if !can_run("capture_local_traffic_decides_for_a_colocated_nginx") {
        return;
    }
    let topo = Topology::new("cap-local");
    let t = &topo;
    let s = t.server_ip;
    let _backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    // nginx next to the egress: its connections to the service are locally generated.
    let nginx = Nginx::start(
        t,
        Side::Server,
        "nginx-server",
        &format!("server {{ listen {s}:8000; location / {{ proxy_pass http://{s}:8080; }} }}"),
    );
    let url = |path: &str| format!("http://{s}:8000{path}");

    // capture_local_traffic: true — nginx's connection is captured, so a plain request (no
    // ingress in front) is refused by the egress …
    let mut egress = NsTng::launch(
        t,
        Side::Server,
        "egress-local",
        egress_config(8080, true),
        EGRESS_CONTROL,
    );
    let r = t.http(Side::Client, &[&url("/foo/plain/x")]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("RejectNonTngRequest"), "{r:?}");
    // … and a request through the ingress works end to end.
    let mut ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress",
        ingress_config(json!({"port": 8000})),
        INGRESS_CONTROL,
    );
    let r = t.http(Side::Client, &[&url("/foo/bar/through")]);
    assert_eq!(r.status, 200, "{r:?}\negress:\n{}", egress.log_tail(20));
    assert_eq!(r.body, "hello from backend: GET /foo/bar/through");
    let lines = nginx.access_lines();
    let last = parse_access(lines.last().unwrap());
    assert_eq!(
        (last.method.as_str(), last.uri.as_str(), last.api.as_str()),
        ("POST", "/foo/bar", "/tng/tunnel"),
        "{lines:#?}"
    );
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));

    // capture_local_traffic: false — nginx's connection goes straight to the service.
    let mut egress = NsTng::launch(
        t,
        Side::Server,
        "egress-nolocal",
        egress_config(8080, false),
        EGRESS_CONTROL,
    );
    let r = t.http(Side::Client, &[&url("/foo/plain/y")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/plain/y");
    // A remote client is still captured (PREROUTING) with `false`.
    let r = t.http(Side::Client, &[&format!("http://{s}:8080/foo/direct")]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("RejectNonTngRequest"), "{r:?}");
    assert!(tunnel_requests_in(&egress.log()).is_empty());
    assert_eq!(egress.stop(), Some(0));
}

#[test]
fn port_end_range_captures_exactly_its_ports() {
    if !can_run("port_end_range_captures_exactly_its_ports") {
        return;
    }
    let topo = Topology::new("cap-range");
    let t = &topo;
    let (gw, s) = (t.gw_ip, t.server_ip);
    let _backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    let nginx = Nginx::start(
        t,
        Side::Gateway,
        "nginx",
        &format!(
            "server {{ listen {gw}:8080; listen {gw}:8081; listen {gw}:8082; \
             location / {{ proxy_pass http://{s}:8080; }} }}"
        ),
    );
    // `false`: the test reads the backend's counter from inside the server namespace.
    let egress = NsTng::launch(
        t,
        Side::Server,
        "egress",
        egress_config(8080, false),
        EGRESS_CONTROL,
    );
    let _ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress",
        ingress_config(json!([{"port": 8080, "port_end": 8081}])),
        INGRESS_CONTROL,
    );
    let hits = || t.backend_requests(Side::Server, "http://127.0.0.1:8080");
    let before = hits();
    for port in [8080u16, 8081] {
        let path = format!("/foo/p{port}/x");
        let r = t.http(Side::Client, &[&format!("http://{gw}:{port}{path}")]);
        assert_eq!(r.status, 200, "port {port}: {r:?}");
        assert_eq!(r.body, format!("hello from backend: GET {path}"));
    }
    // 8082 is outside the range: plain GET through nginx, refused by the egress.
    let r = t.http(Side::Client, &[&format!("http://{gw}:8082/foo/p8082/x")]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("RejectNonTngRequest"), "{r:?}");
    assert_eq!(hits(), before + 2);

    let entries: Vec<Access> = nginx
        .access_lines()
        .iter()
        .map(|l| parse_access(l))
        .collect();
    for port in [8080u16, 8081] {
        let on_port: Vec<&Access> = entries.iter().filter(|e| e.port == port).collect();
        assert!(!on_port.is_empty(), "{entries:#?}");
        assert!(on_port.iter().all(|e| e.method == "POST"), "{entries:#?}");
        assert!(
            on_port
                .iter()
                .any(|e| e.api == "/tng/tunnel" && e.uri == format!("/foo/p{port}")),
            "{entries:#?}"
        );
    }
    let plain: Vec<&Access> = entries.iter().filter(|e| e.port == 8082).collect();
    assert_eq!(plain.len(), 1, "{entries:#?}");
    assert_eq!(
        (plain[0].method.as_str(), plain[0].uri.as_str()),
        ("GET", "/foo/p8082/x")
    );
    let opened = tunnel_requests_in(&egress.log());
    assert_eq!(opened.len(), 2, "{opened:#?}");
}

#[test]
fn ipset_captures_only_its_addresses_and_must_exist() {
    if !can_run("ipset_captures_only_its_addresses_and_must_exist") {
        return;
    }
    let topo = Topology::new("cap-ipset");
    let t = &topo;
    let (gw, s) = (t.gw_ip, t.server_ip);
    let gw2 = std::net::Ipv4Addr::new(198, 18, t.n as u8, 3);
    t.ip(
        Side::Gateway,
        &["addr", "add", &format!("{gw2}/24"), "dev", &t.gw_client_veth],
    );
    let set = format!("tngset{}", t.n);
    t.exec_ok(Side::Client, &["ipset", "create", &set, "hash:ip"]);
    t.exec_ok(Side::Client, &["ipset", "add", &set, &gw.to_string()]);

    // A capture_dst naming a missing ipset: refused before any rule is installed.
    let baseline = t.iptables_state(Side::Client);
    let (code, log) = NsTng::expect_failure(
        t,
        Side::Client,
        "ingress-noset",
        ingress_config(json!([{"ipset": format!("tngnoset{}", t.n), "port": 8080}])),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("add_ingress[0].netfilter.capture_dst[0].ipset"),
        "the error does not name the field:\n{log}"
    );
    assert_eq!(t.iptables_state(Side::Client), baseline);

    let _backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    let nginx = Nginx::start(
        t,
        Side::Gateway,
        "nginx",
        &format!(
            "server {{ listen {gw}:8080; listen {gw2}:8080; \
             location / {{ proxy_pass http://{s}:8080; }} }}"
        ),
    );
    let egress = NsTng::launch(
        t,
        Side::Server,
        "egress",
        egress_config(8080, false),
        EGRESS_CONTROL,
    );
    let _ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress",
        ingress_config(json!([{"ipset": set, "port": 8080}])),
        INGRESS_CONTROL,
    );
    let hits = || t.backend_requests(Side::Server, "http://127.0.0.1:8080");
    let before = hits();

    let r = t.http(Side::Client, &[&format!("http://{gw}:8080/foo/inset/x")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/inset/x");
    // Same port, an address outside the set: plain, refused by the egress behind nginx.
    let r = t.http(Side::Client, &[&format!("http://{gw2}:8080/foo/outset/x")]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("RejectNonTngRequest"), "{r:?}");
    assert_eq!(hits(), before + 1);

    let entries: Vec<Access> = nginx
        .access_lines()
        .iter()
        .map(|l| parse_access(l))
        .collect();
    let gw_s = gw.to_string();
    let gw2_s = gw2.to_string();
    assert!(entries
        .iter()
        .filter(|e| e.addr == gw_s)
        .all(|e| e.method == "POST"));
    assert!(entries
        .iter()
        .any(|e| e.addr == gw_s && e.api == "/tng/tunnel" && e.uri == "/foo/inset"));
    let plain: Vec<&Access> = entries.iter().filter(|e| e.addr == gw2_s).collect();
    assert_eq!(plain.len(), 1, "{entries:#?}");
    assert_eq!(
        (plain[0].method.as_str(), plain[0].uri.as_str()),
        ("GET", "/foo/outset/x")
    );
    assert_eq!(tunnel_requests_in(&egress.log()).len(), 1);
}

#[test]
fn rules_are_removed_on_sigterm_and_after_sigkill_plus_restart() {
    if !can_run("rules_are_removed_on_sigterm_and_after_sigkill_plus_restart") {
        return;
    }
    let topo = Topology::new("cap-lifecycle");
    let t = &topo;
    let sides = [Side::Client, Side::Gateway, Side::Server];
    let snapshot = || {
        let mut all: Vec<String> = sides.iter().map(|s| t.iptables_state(*s)).collect();
        all.push(t.routing_state(Side::Client));
        all
    };
    let baseline = snapshot();
    assert!(baseline[0].contains("*mangle") && baseline[2].contains("*nat"));

    let _backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    let _nginx = gateway_nginx(t, "");
    let url = format!("http://{}:8080/foo/bar/life", t.gw_ip);
    let start = |suffix: &str| {
        let e = NsTng::launch(
            t,
            Side::Server,
            &format!("egress-{suffix}"),
            egress_config(8080, true),
            EGRESS_CONTROL,
        );
        let i = NsTng::launch(
            t,
            Side::Client,
            &format!("ingress-{suffix}"),
            ingress_config(json!({"port": 8080})),
            INGRESS_CONTROL,
        );
        let r = t.http(Side::Client, &[&url]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, "hello from backend: GET /foo/bar/life");
        (i, e)
    };

    // 1. Start, use, SIGTERM: exit 0 and every namespace is back to its baseline.
    let (mut ingress, mut egress) = start("1");
    let running = snapshot();
    assert!(running[0].contains("TNG_INGRESS_0"), "{}", running[0]);
    assert!(running[2].contains("TNG_EGRESS_0"), "{}", running[2]);
    assert!(running[3].contains("lookup 239"), "{}", running[3]);
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    assert_eq!(snapshot(), baseline, "state after SIGTERM differs");

    // 2. SIGKILL leaves the rules behind …
    let (mut ingress, mut egress) = start("2");
    ingress.kill();
    egress.kill();
    let stale = snapshot();
    assert!(stale[0].contains("TNG_INGRESS_0") && stale[2].contains("TNG_EGRESS_0"));
    // … a restart replaces them (no duplicates) and works …
    let (mut ingress, mut egress) = start("3");
    let restarted = snapshot();
    for (i, (a, b)) in running.iter().zip(&restarted).enumerate() {
        assert_eq!(
            a.lines().count(),
            b.lines().count(),
            "namespace state {i} after restart differs in size from a clean start:\n{a}\n---\n{b}"
        );
    }
    assert_eq!(restarted[3].matches("lookup 239").count(), 1, "{}", restarted[3]);
    // … and its SIGTERM restores the baseline.
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    assert_eq!(snapshot(), baseline, "state after SIGKILL+restart+SIGTERM differs");
}

#[test]
fn second_instance_in_a_namespace_refuses_to_start() {
    if !can_run("second_instance_in_a_namespace_refuses_to_start") {
        return;
    }
    let f = Founding::start("cap-lock");
    let t = &f.topo;
    let url = f.gw(8080, "/foo/bar/lock");
    let rules_before = t.iptables_state(Side::Client);

    for (side, config) in [
        (Side::Client, ingress_config(json!({"port": 8080}))),
        (Side::Server, egress_config(8080, true)),
        // A different capture selection must not get past the lock either.
        (Side::Client, ingress_config(json!({"port": 9999}))),
    ] {
        let (code, log) = NsTng::expect_failure(t, side, "second", config);
        assert_eq!(code, Some(1), "{log}");
        assert!(
            log.contains("another TNG instance already runs in this network namespace"),
            "{log}"
        );
    }
    // The first instances keep serving with their rules intact.
    assert_eq!(t.iptables_state(Side::Client), rules_before);
    let r = t.http(Side::Client, &[&url]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/bar/lock");
    let _ = (&f.ingress, &f.egress, &f.nginx, &f.backend, &f.backend2);
}
