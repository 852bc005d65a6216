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
    let dump = Tcpdump::start(t, Side::Gateway);

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

    let pcap = dump.stop(t);
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
    let dump = Tcpdump::start(t, Side::Gateway);
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

    let pcap = dump.stop(t);
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
    // nginx next to the egress: its connections to the service are locally generated, to
    // the server's address (port 8000) or to loopback (port 8001).
    let nginx = Nginx::start(
        t,
        Side::Server,
        "nginx-server",
        &format!(
            "server {{ listen {s}:8000; location / {{ proxy_pass http://{s}:8080; }} }}\n\
             server {{ listen {s}:8001; location / {{ proxy_pass http://127.0.0.1:8080; }} }}"
        ),
    );
    let url = |path: &str| format!("http://{s}:8000{path}");
    let url_lo = |path: &str| format!("http://{s}:8001{path}");

    // capture_local_traffic: true — nginx's connection is captured, so a plain request (no
    // ingress in front) is refused by the egress …
    let mut egress = NsTng::launch(
        t,
        Side::Server,
        "egress-local",
        egress_config(8080, true),
        EGRESS_CONTROL,
    );
    for u in [url("/foo/plain/x"), url_lo("/foo/plain/x")] {
        let r = t.http(Side::Client, &[&u]);
        assert_eq!(r.status, 403, "{u}: {r:?}");
        assert!(r.body.contains("RejectNonTngRequest"), "{r:?}");
    }
    // … and requests through the ingress work end to end.
    let mut ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress",
        ingress_config(json!({"port": 8000, "port_end": 8001})),
        INGRESS_CONTROL,
    );
    for (u, port) in [
        (url("/foo/bar/through"), 8000u16),
        (url_lo("/foo/bar/through"), 8001),
    ] {
        let r = t.http(Side::Client, &[&u]);
        assert_eq!(
            r.status,
            200,
            "{u}: {r:?}\negress:\n{}",
            egress.log_tail(20)
        );
        assert_eq!(r.body, "hello from backend: GET /foo/bar/through");
        let lines = nginx.access_lines();
        let last = parse_access(lines.last().unwrap());
        assert_eq!(
            (
                last.method.as_str(),
                last.uri.as_str(),
                last.api.as_str(),
                last.port
            ),
            ("POST", "/foo/bar", "/tng/tunnel", port),
            "{lines:#?}"
        );
    }
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    // Counted once the egress has exited: its log writer is asynchronous, and exit flushes it.
    assert_eq!(tunnel_requests_in(&egress.log()).len(), 2);

    // capture_local_traffic: false — nginx's connection goes straight to the service.
    let mut egress = NsTng::launch(
        t,
        Side::Server,
        "egress-nolocal",
        egress_config(8080, false),
        EGRESS_CONTROL,
    );
    for u in [url("/foo/plain/y"), url_lo("/foo/plain/y")] {
        let r = t.http(Side::Client, &[&u]);
        assert_eq!(r.status, 200, "{u}: {r:?}");
        assert_eq!(r.body, "hello from backend: GET /foo/plain/y");
    }
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
        &[
            "addr",
            "add",
            &format!("{gw2}/24"),
            "dev",
            &t.gw_client_veth,
        ],
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
    let mut ingress = NsTng::launch(
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

    // The same split with a `host` match instead of the ipset.
    assert_eq!(ingress.stop(), Some(0));
    let mut ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress-host",
        ingress_config(json!([{"host": gw_s, "port": 8080}])),
        INGRESS_CONTROL,
    );
    let skip = nginx.access_lines().len();
    let r = t.http(Side::Client, &[&format!("http://{gw}:8080/foo/inhost/x")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/inhost/x");
    let r = t.http(Side::Client, &[&format!("http://{gw2}:8080/foo/outhost/x")]);
    assert_eq!(r.status, 403, "{r:?}");
    let entries: Vec<Access> = nginx
        .access_since(skip)
        .iter()
        .map(|l| parse_access(l))
        .collect();
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .filter(|e| e.api != "/tng/key-config")
        .map(|e| (e.addr.clone(), e.method.clone(), e.uri.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (gw_s.clone(), "POST".to_string(), "/foo/inhost".to_string()),
            (
                gw2_s.clone(),
                "GET".to_string(),
                "/foo/outhost/x".to_string()
            ),
        ],
        "{entries:#?}"
    );
    assert_eq!(hits(), before + 2);
    assert_eq!(ingress.stop(), Some(0));
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
    assert_eq!(
        restarted[3].matches("lookup 239").count(),
        1,
        "{}",
        restarted[3]
    );
    // … and its SIGTERM restores the baseline.
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    assert_eq!(
        snapshot(),
        baseline,
        "state after SIGKILL+restart+SIGTERM differs"
    );

    // 3. SIGINT is a graceful stop too.
    let (mut ingress, mut egress) = start("4");
    assert_eq!(
        ingress.stop_with("INT"),
        Some(0),
        "{}",
        ingress.log_tail(20)
    );
    assert_eq!(egress.stop_with("INT"), Some(0), "{}", egress.log_tail(20));
    assert_eq!(snapshot(), baseline, "state after SIGINT differs");
}

#[test]
fn missing_tools_fail_startup_naming_the_package() {
    if !can_run("missing_tools_fail_startup_naming_the_package") {
        return;
    }
    let topo = Topology::new("cap-tools");
    let t = &topo;
    let baseline = t.iptables_state(Side::Client);
    // A PATH with the iptables tools but without `ip` (the ingress' policy routing needs it).
    let only_iptables = t.dir.join("only-iptables");
    std::fs::create_dir_all(&only_iptables).unwrap();
    for tool in ["iptables", "iptables-save", "iptables-restore", "ipset"] {
        let real = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        assert!(!real.is_empty(), "{tool} is not installed");
        std::os::unix::fs::symlink(&real, only_iptables.join(tool)).unwrap();
    }
    let only = only_iptables.display().to_string();
    let empty = t.dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.display().to_string();
    let cases = [
        (
            ingress_config(json!({"port": 8080})),
            empty.as_str(),
            "`iptables`",
            "package `iptables`",
        ),
        (
            egress_config(8080, true),
            empty.as_str(),
            "`iptables`",
            "package `iptables`",
        ),
        (
            ingress_config(json!({"port": 8080})),
            only.as_str(),
            "`ip`",
            "package `iproute2`",
        ),
    ];
    for (config, path, tool, package) in cases {
        let (code, log) =
            NsTng::expect_failure_env(t, Side::Client, "no-tools", config, &[("PATH", path)]);
        assert_eq!(code, Some(1), "{log}");
        assert!(
            log.contains(tool) && log.contains(package),
            "PATH={path}:\n{log}"
        );
        assert_eq!(t.iptables_state(Side::Client), baseline);
        assert!(!t.routing_state(Side::Client).contains("lookup 239"));
    }
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

#[test]
fn sigterm_lets_in_flight_requests_finish_then_removes_rules() {
    if !can_run("sigterm_lets_in_flight_requests_finish_then_removes_rules") {
        return;
    }
    let mut f = Founding::start("cap-inflight");
    let t = &f.topo;
    let out = t.dir.join("slow-body");
    let out_arg = out.display().to_string();
    let url = f.gw(8080, "/slow?ms=2000");
    let mut curl = t.spawn(
        Side::Client,
        "curl-slow",
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-o",
            &out_arg,
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    // Wait until the egress has the request, then stop both sides while it is in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tunnel_requests_in(&f.egress.log()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            f.egress.log_tail(20)
        );
        tng_e2e::pause(std::time::Duration::from_millis(20));
    }
    f.ingress.proc.signal("TERM");
    f.egress.proc.signal("TERM");
    assert_eq!(f.ingress.stop(), Some(0), "{}", f.ingress.log_tail(20));
    assert_eq!(f.egress.stop(), Some(0), "{}", f.egress.log_tail(20));
    let status = curl
        .wait_timeout(std::time::Duration::from_secs(20))
        .expect("curl finished");
    assert!(status.success(), "{}", curl.log());
    assert_eq!(curl.log(), "200");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "slow 2000 ms\n");
    for side in [Side::Client, Side::Server] {
        let state = t.iptables_state(side);
        assert!(!state.contains("TNG_"), "{state}");
    }
    assert!(!t.routing_state(Side::Client).contains("lookup 239"));
}

#[test]
fn several_entries_with_custom_marks_and_ports_coexist_and_clean_up() {
    if !can_run("several_entries_with_custom_marks_and_ports_coexist_and_clean_up") {
        return;
    }
    let topo = Topology::new("cap-multi");
    let t = &topo;
    let baseline = (
        t.iptables_state(Side::Client),
        t.iptables_state(Side::Server),
        t.routing_state(Side::Client),
    );
    let _backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    let _backend2 = t.backend(Side::Server, "backend9090", "0.0.0.0:9090");
    let nginx = gateway_nginx(t, "");
    let rewrite = json!({"path_rewrites": [
        {"match_regex": "^/foo/([^/]+)([/]?.*)$", "substitution": "/foo/$1"}
    ]});
    // Two egresses (ids 0 and 1), the second with its own mark and listen port.
    let mut egress = NsTng::launch(
        t,
        Side::Server,
        "egress",
        json!({"add_egress": [
            {"netfilter": {"capture_dst": {"port": 8080}},
             "ohttp": {"key": {"source": "self_generated"}}, "no_ra": true},
            {"netfilter": {"capture_dst": [{"port": 9090}], "so_mark": 4660, "listen_port": 40002},
             "ohttp": {"key": {"source": "self_generated"}}, "no_ra": true}
        ]}),
        EGRESS_CONTROL,
    );
    // Two ingresses (ids 0 and 1): fw marks 566/567, route tables 239/240. Their OHTTP
    // settings differ (the second has no path rewrite: outer path `/`), so nginx shows which
    // ingress handled a request.
    let mut ingress = NsTng::launch(
        t,
        Side::Client,
        "ingress",
        json!({"add_ingress": [
            {"netfilter": {"capture_dst": {"port": 8080}, "so_mark": 1234, "listen_port": 40001},
             "ohttp": rewrite, "no_ra": true},
            {"netfilter": {"capture_dst": [{"port": 9090}]}, "ohttp": {}, "no_ra": true}
        ]}),
        INGRESS_CONTROL,
    );
    let client_rules = t.iptables_state(Side::Client);
    for needle in [
        "--on-port 40001",
        "--mark 0x4d2 -j RETURN",
        "--tproxy-mark 0x236/0xffffff",
        "--tproxy-mark 0x237/0xffffff",
        "TNG_INGRESS_1_OUTPUT_STAGE_2",
    ] {
        assert!(client_rules.contains(needle), "{needle}:\n{client_rules}");
    }
    let server_rules = t.iptables_state(Side::Server);
    for needle in [
        "--to-ports 40002",
        "--mark 0x1234 -j RETURN",
        "TNG_EGRESS_1",
    ] {
        assert!(server_rules.contains(needle), "{needle}:\n{server_rules}");
    }
    let routing = t.routing_state(Side::Client);
    for needle in [
        "fwmark 0x236/0xffffff lookup 239",
        "fwmark 0x237/0xffffff lookup 240",
    ] {
        assert!(routing.contains(needle), "{needle}:\n{routing}");
    }

    // Each ingress must handle exactly what its own capture_dst selected.
    for (port, path) in [(9090u16, "/foo/two/x"), (8080, "/foo/one/x")] {
        let url = format!("http://{}:{port}{path}", t.gw_ip);
        let r = t.http(Side::Client, &["--max-time", "5", &url]);
        assert_eq!(r.status, 200, "{url}: {r:?}\n{}", ingress.log_tail(20));
        assert_eq!(r.body, format!("hello from backend: GET {path}"));
    }
    let entries: Vec<Access> = nginx
        .access_lines()
        .iter()
        .map(|l| parse_access(l))
        .collect();
    let tunnels: Vec<(u16, &str)> = entries
        .iter()
        .filter(|e| e.api == "/tng/tunnel")
        .map(|e| (e.port, e.uri.as_str()))
        .collect();
    assert_eq!(tunnels, [(9090, "/"), (8080, "/foo/one")], "{entries:#?}");
    let log = ingress.log();
    for (listener, path) in [
        ("ingress0:40001", "/foo/one/x"),
        ("ingress1:", "/foo/two/x"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("listener={listener}")) && l.contains(path)),
            "{path} was not handled by {listener}:\n{log}"
        );
    }
    assert!(entries.iter().all(|e| e.method == "POST"), "{entries:#?}");

    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    assert_eq!(
        (
            t.iptables_state(Side::Client),
            t.iptables_state(Side::Server),
            t.routing_state(Side::Client),
        ),
        baseline
    );
}
