//! Ingress `http_proxy` and `socks5` in real network namespaces, through a real nginx:
//! destinations matching `dst_filters` are tunnelled (nginx sees only OHTTP POSTs), the others
//! are proxied in plaintext, and SOCKS5 authentication is enforced.
//!
//! Needs root (namespaces, iptables, nginx). Not root and `CI` unset: a loud SKIP.
//!
//! ```text
//! client (curl → proxy ingress) ── gateway (nginx :8080/:9090) ── server (egress :8080, backends :8080/:9090)
//! ```

#[path = "netns/mod.rs"]
mod netns;

use netns::*;
use serde_json::{json, Value};

const INGRESS_CONTROL: u16 = 7000;
const EGRESS_CONTROL: u16 = 7001;
const PROXY_PORT: u16 = 3128;

/// Gateway nginx, the two backends and the egress (capture of remote traffic to 8080 only,
/// so the test can read the backends' counters from inside the server namespace).
struct Site {
    ingress: NsTng,
    egress: NsTng,
    nginx: Nginx,
    backend: tng_e2e::Proc,
    backend2: tng_e2e::Proc,
    topo: Topology,
}

impl Site {
    fn start(label: &str, hosts: &[&str], ingress_entry: impl Fn(&Topology) -> Value) -> Site {
        let mut topo = Topology::new(label);
        if !hosts.is_empty() {
            let gw = topo.gw_ip;
            let entries: Vec<String> = hosts.iter().map(|h| format!("{gw} {h}")).collect();
            topo.hosts_file(Side::Client, &entries.join("\n"));
        }
        let backend = topo.backend(Side::Server, "backend", "0.0.0.0:8080");
        let backend2 = topo.backend(Side::Server, "backend9090", "0.0.0.0:9090");
        let nginx = gateway_nginx(&topo, "");
        let egress = NsTng::launch(
            &topo,
            Side::Server,
            "egress",
            egress_config(8080, false),
            EGRESS_CONTROL,
        );
        let mut entry = ingress_entry(&topo);
        entry["ohttp"] = json!({"path_rewrites": [
            {"match_regex": "^/foo/([^/]+)([/]?.*)$", "substitution": "/foo/$1"}
        ]});
        entry["no_ra"] = json!(true);
        let ingress = NsTng::launch(
            &topo,
            Side::Client,
            "ingress",
            json!({"add_ingress": [entry]}),
            INGRESS_CONTROL,
        );
        Site {
            ingress,
            egress,
            nginx,
            backend,
            backend2,
            topo,
        }
    }

    /// Requests served by the backend on `port` (read locally, not through anything).
    fn hits(&self, port: u16) -> u64 {
        self.topo
            .backend_requests(Side::Server, &format!("http://127.0.0.1:{port}"))
    }

    fn access(&self) -> Vec<Access> {
        self.nginx
            .access_lines()
            .iter()
            .map(|l| parse_access(l))
            .collect()
    }

    /// Asserts the nginx access-log lines since `skip` are exactly one tunnel request (plus an
    /// optional key-config fetch) on outer path `outer`.
    fn assert_tunnelled(&self, skip: usize, outer: &str) {
        let new: Vec<Access> = self.access().into_iter().skip(skip).collect();
        assert!(
            new.iter().all(|e| e.method == "POST" && e.uri == outer),
            "nginx saw more than OHTTP POSTs to {outer}: {new:#?}"
        );
        let tunnels: Vec<&Access> = new.iter().filter(|e| e.api == "/tng/tunnel").collect();
        assert_eq!(tunnels.len(), 1, "{new:#?}");
        assert_eq!(tunnels[0].content_type, "message/ohttp-chunked-req");
        assert_eq!(tunnels[0].port, 8080);
    }

    /// Asserts the nginx access-log lines since `skip` are exactly one plain GET of `path`
    /// on port `port`.
    fn assert_plain(&self, skip: usize, path: &str, port: u16) {
        let new: Vec<Access> = self.access().into_iter().skip(skip).collect();
        assert_eq!(new.len(), 1, "{new:#?}");
        assert_eq!(
            (new[0].method.as_str(), new[0].uri.as_str(), new[0].port),
            ("GET", path, port),
            "{new:#?}"
        );
        assert_eq!(new[0].api, "-");
    }
}

#[test]
fn http_proxy_tunnels_matching_destinations_and_forwards_the_rest() {
    if !can_run("http_proxy_tunnels_matching_destinations_and_forwards_the_rest") {
        return;
    }
    let site = Site::start(
        "proxy-http",
        &["api.tunnel.test", "plain.other.test"],
        |t| {
            json!({"http_proxy": {
                "proxy_listen": {"host": "127.0.0.1", "port": PROXY_PORT},
                "dst_filters": [
                    {"domain": "*.tunnel.test", "port": 8080},
                    {"ip": t.gw_ip.to_string(), "port": 8080}
                ]
            }})
        },
    );
    let t = &site.topo;
    let gw = t.gw_ip;
    let proxy = format!("http://127.0.0.1:{PROXY_PORT}");
    let (h1, h2) = (site.hits(8080), site.hits(9090));

    // Absolute-form request to a matching IP: tunnelled.
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &["-x", &proxy, &format!("http://{gw}:8080/foo/ip/x?y=1")],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", site.ingress.log_tail(20));
    assert_eq!(r.body, "hello from backend: GET /foo/ip/x");
    site.assert_tunnelled(n, "/foo/ip");

    // CONNECT (proxytunnel) to a matching IP: the HTTP inside is tunnelled.
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &["-p", "-x", &proxy, &format!("http://{gw}:8080/foo/conn/x")],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", site.ingress.log_tail(20));
    assert_eq!(r.body, "hello from backend: GET /foo/conn/x");
    site.assert_tunnelled(n, "/foo/conn");

    // A matching domain (resolved by the ingress through the client's /etc/hosts).
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &["-x", &proxy, "http://api.tunnel.test:8080/foo/dom/x"],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", site.ingress.log_tail(20));
    assert_eq!(r.body, "hello from backend: GET /foo/dom/x");
    site.assert_tunnelled(n, "/foo/dom");
    assert_eq!(site.hits(8080), h1 + 3);

    // Non-matching destinations go out in plaintext: another port …
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &["-x", &proxy, &format!("http://{gw}:9090/foo/plain/x")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/plain/x");
    site.assert_plain(n, "/foo/plain/x", 9090);
    // … also through CONNECT …
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &[
            "-p",
            "-x",
            &proxy,
            &format!("http://{gw}:9090/foo/plainconn/x"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/plainconn/x");
    site.assert_plain(n, "/foo/plainconn/x", 9090);
    // … and a domain outside the pattern on the captured port: the plain GET reaches nginx
    // and the egress behind it refuses it.
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &["-x", &proxy, "http://plain.other.test:8080/foo/otherdom/x"],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("RejectNonTngRequest"), "{r:?}");
    site.assert_plain(n, "/foo/otherdom/x", 8080);

    assert_eq!(site.hits(8080), h1 + 3);
    assert_eq!(site.hits(9090), h2 + 2);
    let _ = (&site.egress, &site.backend, &site.backend2);
}

#[test]
fn socks5_tunnels_matching_destinations_and_enforces_auth() {
    if !can_run("socks5_tunnels_matching_destinations_and_enforces_auth") {
        return;
    }
    let site = Site::start("proxy-socks", &[], |t| {
        json!({"socks5": {
            "proxy_listen": {"host": "127.0.0.1", "port": PROXY_PORT},
            "auth": {"username": "u", "password": "p"},
            "dst_filters": [{"ip": t.gw_ip.to_string(), "port": 8080}]
        }})
    });
    let t = &site.topo;
    let gw = t.gw_ip;
    let (h1, h2) = (site.hits(8080), site.hits(9090));
    let socks = |cred: &str| format!("{cred}127.0.0.1:{PROXY_PORT}");

    // socks5h (the proxy gets the host name) and socks5 (an IPv4 address): both tunnelled.
    for (flag, path) in [
        ("--socks5-hostname", "/foo/s5h/x"),
        ("--socks5", "/foo/s5/x"),
    ] {
        let n = site.access().len();
        let r = t.http(
            Side::Client,
            &[flag, &socks("u:p@"), &format!("http://{gw}:8080{path}")],
        );
        assert_eq!(
            r.status,
            200,
            "{flag}: {r:?}\n{}",
            site.ingress.log_tail(20)
        );
        assert_eq!(r.body, format!("hello from backend: GET {path}"));
        let outer = &path[..path.len() - 2];
        site.assert_tunnelled(n, outer);
    }
    assert_eq!(site.hits(8080), h1 + 2);

    // Wrong password, and no credentials at all: curl fails with CURLE_PROXY (97), nothing
    // reaches nginx or the backend.
    let n = site.access().len();
    for cred in ["u:wrong@", "x:p@", ""] {
        let r = t.http(
            Side::Client,
            &[
                "--socks5-hostname",
                &socks(cred),
                &format!("http://{gw}:8080/foo/denied/x"),
            ],
        );
        assert_eq!(r.curl_exit, 97, "credentials {cred:?}: {r:?}");
        assert_eq!(r.status, 0, "{r:?}");
    }
    assert_eq!(
        site.access().len(),
        n,
        "a refused SOCKS client reached nginx"
    );
    assert_eq!(site.hits(8080), h1 + 2);

    // A non-matching destination is piped in plaintext.
    let n = site.access().len();
    let r = t.http(
        Side::Client,
        &[
            "--socks5-hostname",
            &socks("u:p@"),
            &format!("http://{gw}:9090/foo/plain/x"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from backend: GET /foo/plain/x");
    site.assert_plain(n, "/foo/plain/x", 9090);
    assert_eq!(site.hits(9090), h2 + 1);
    assert_eq!(site.hits(8080), h1 + 2);
    let _ = (&site.egress, &site.backend, &site.backend2);
}
