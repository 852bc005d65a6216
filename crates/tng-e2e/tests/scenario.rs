//! The founding scenario (seed "use case 4") with the seed's two configurations verbatim: only
//! `<attestation-service-url>` is filled in. What `scripts/scenario.sh` shows, asserted.
//!
//! ```text
//! client (ingress: netfilter + verify, curl) ── gateway (nginx :8080) ── server (egress:
//!   netfilter + attest, backend :8080, sample AA on the default socket, sample AS :8000)
//! ```
//!
//! The egress config names the Attestation Agent's default socket path, so only one scenario
//! may run at a time on a machine: each takes an exclusive lock (shared with the script)
//! before starting its AA, and refuses to displace an AA that someone else is running there.
//!
//! Needs root (namespaces, iptables, nginx). Not root and `CI` unset: a loud SKIP.

#[path = "netns/mod.rs"]
mod netns;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netns::*;
use tng_e2e::{bin, Proc};

/// The seed's client-side configuration, byte for byte.
const SEED_INGRESS: &str = r#"{
    "add_ingress": [
        {
            "netfilter": {
                "capture_dst": {
                    "port": 8080
                }
            },
            "ohttp": {
                "path_rewrites": [
                    {
                        "match_regex": "^/foo/([^/]+)([/]?.*)$",
                        "substitution": "/foo/$1"
                    }
                ]
            },
            "verify": {
                "as_addr": "<attestation-service-url>",
                "policy_ids": [
                    "default"
                ]
            }
        }
    ]
}"#;

/// The seed's server-side configuration, byte for byte.
const SEED_EGRESS: &str = r#"{
    "add_egress": [
        {
            "netfilter": {
                "capture_dst": {
                    "port": 8080
                },
                "capture_local_traffic": true
            },
            "ohttp": {
                "key": {
                    "source": "self_generated"
                }
            },
            "attest": {
                "aa_addr": "unix:///run/confidential-containers/attestation-agent/attestation-agent.sock"
            }
        }
    ]
}"#;

const AA_SOCKET: &str = "/run/confidential-containers/attestation-agent/attestation-agent.sock";
/// Also taken by `scripts/scenario.sh`.
const AA_LOCK: &str = "/run/tng-default-aa.lock";
/// Not 8080: the ingress captures every connection to port 8080, the egress every one to the
/// server's 8080.
const AS_PORT: u16 = 8000;

/// A policy that affirms everything but the hardware claim (97 = contraindicated).
const HARDWARE_97_POLICY: &str = "package policy\n\n\
    executables := 2\n\
    configuration := 2\n\
    file_system := 2\n\
    hardware := 97\n";

/// Exclusive use of the default AA socket path for the life of a scenario; removes the socket
/// on drop (after the topology killed the AA, see field order in [`Scenario`]).
///
/// The lock is `flock(1)` holding [`AA_LOCK`] while it waits on its stdin: closing the pipe
/// (on drop, or when this process dies in any way) releases it. The script takes the same lock.
struct DefaultAaSocket {
    holder: Child,
    /// The socket's directories that did not exist before (the AA creates them), innermost
    /// first: removed again on drop when empty.
    created_dirs: Vec<PathBuf>,
}

impl DefaultAaSocket {
    fn claim() -> DefaultAaSocket {
        let mut holder = Command::new("flock")
            .args([
                "--exclusive",
                "--timeout",
                "300",
                AA_LOCK,
                "-c",
                "echo locked; exec cat >/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("flock {AA_LOCK}: {e} (util-linux installed?)"));
        // Blocks while another scenario (this binary's other test, or the script) runs.
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("flock stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(
            line.trim(),
            "locked",
            "could not lock {AA_LOCK} within 300 s: another scenario is stuck?"
        );
        let path = Path::new(AA_SOCKET);
        if path.exists() {
            assert!(
                UnixStream::connect(path).is_err(),
                "an Attestation Agent is already serving {AA_SOCKET}; refusing to replace it"
            );
            // Nobody answers: left over from a killed run (the AA would remove it anyway).
            let _ = fs::remove_file(path);
        }
        let created_dirs = path
            .ancestors()
            .skip(1)
            .take_while(|d| *d != Path::new("/run"))
            .filter(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        DefaultAaSocket {
            holder,
            created_dirs,
        }
    }
}

impl Drop for DefaultAaSocket {
    fn drop(&mut self) {
        let path = Path::new(AA_SOCKET);
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = fs::remove_file(path);
        }
        for dir in &self.created_dirs {
            let _ = fs::remove_dir(dir);
        }
        // EOF on its stdin ends the holder, which releases the lock.
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

/// The scenario, up. Field order = drop order: processes, then the namespaces (which kills
/// anything left in them), then the socket claim.
struct Scenario {
    ingress: Proc,
    egress: Proc,
    nginx: Nginx,
    _as: Proc,
    _aa: Proc,
    _backend: Proc,
    topo: Topology,
    _aa_socket: DefaultAaSocket,
}

impl Scenario {
    /// Brings the scenario up; `policy` replaces the AS's `default` policy.
    fn start(label: &str, policy: Option<&str>) -> Scenario {
        let aa_socket = DefaultAaSocket::claim();
        let topo = Topology::new(label);
        let devkit = bin("tng-devkit").display().to_string();

        let backend = topo.backend(Side::Server, "backend", "0.0.0.0:8080");
        let aa_addr = format!("unix://{AA_SOCKET}");
        let mut aa = topo.spawn(Side::Server, "aa", &devkit, &["aa", "--socket", &aa_addr]);
        aa.wait_for_line("attestation agent listening on", Duration::from_secs(10));

        let as_listen = format!("{}:{AS_PORT}", topo.server_ip);
        let workdir = topo.dir.join("as");
        let workdir = workdir.display().to_string();
        let mut as_args = vec!["as", "--listen", &as_listen, "--workdir", &workdir];
        let policy_arg;
        if let Some(policy) = policy {
            let file = topo.dir.join("policy.rego");
            fs::write(&file, policy).expect("write policy");
            policy_arg = format!("default={}", file.display());
            as_args.extend(["--policy", &policy_arg]);
        }
        let mut as_proc = topo.spawn(Side::Server, "as", &devkit, &as_args);
        as_proc.wait_for_line("attestation service listening on", Duration::from_secs(10));

        let (gw, s) = (topo.gw_ip, topo.server_ip);
        let nginx = Nginx::start(
            &topo,
            Side::Gateway,
            "nginx",
            &format!(
                "server {{ listen {gw}:8080; \
                   location /foo/ {{ proxy_pass http://{s}:8080; }} \
                   location / {{ proxy_pass http://{s}:8080; }} }}"
            ),
        );

        let egress = launch(&topo, Side::Server, "egress", SEED_EGRESS);
        let ingress_config =
            SEED_INGRESS.replace("<attestation-service-url>", &format!("http://{as_listen}/"));
        let ingress = launch(&topo, Side::Client, "ingress", &ingress_config);

        Scenario {
            ingress,
            egress,
            nginx,
            _as: as_proc,
            _aa: aa,
            _backend: backend,
            topo,
            _aa_socket: aa_socket,
        }
    }

    fn gw(&self, path: &str) -> String {
        format!("http://{}:8080{path}", self.topo.gw_ip)
    }

    fn nginx_entries(&self) -> (Vec<String>, Vec<Access>) {
        let lines = self.nginx.access_lines();
        let entries = lines.iter().map(|l| parse_access(l)).collect();
        (lines, entries)
    }
}

/// `tng launch --config-file` with the configuration text exactly as given (no control
/// interface added: the seed has none), logging to stdout; waits for "tng started", which
/// comes after every listener is bound and every capture rule installed.
fn launch(topo: &Topology, side: Side, name: &str, config: &str) -> Proc {
    let path = topo.dir.join(format!("{name}.json"));
    fs::write(&path, config).expect("write config");
    let tng = bin("tng").display().to_string();
    let path = path.display().to_string();
    let mut cmd = topo.command(
        side,
        "/usr/bin/env",
        &[
            "RUST_LOG=info,tng=debug",
            &tng,
            "launch",
            "--config-file",
            &path,
        ],
    );
    cmd.env_remove("RUST_LOG");
    let mut proc = Proc::spawn(name, cmd, &topo.dir);
    proc.wait_for_line("tng started", Duration::from_secs(20));
    proc
}

fn lines_with(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn seed_scenario_verbatim_attested_end_to_end() {
    if !can_run("seed_scenario_verbatim_attested_end_to_end") {
        return;
    }
    let sc = Scenario::start("scenario", None);
    let t = &sc.topo;

    let secret = format!("seed-scenario-secret-{}", t.n);
    let cases: [(&[&str], &str, &str); 4] = [
        (&[], "/foo/bar/baz", "hello from backend: GET /foo/bar/baz"),
        (&[], "/foo/hello", "hello from backend: GET /foo/hello"),
        (
            &["-H", "content-type: text/plain", "--data-binary", &secret],
            "/foo/hello?lang=en",
            "hello from backend: POST /foo/hello",
        ),
        (
            &[],
            "/foo/bar/qux?x=1",
            "hello from backend: GET /foo/bar/qux",
        ),
    ];
    for (extra, path, want) in cases {
        let url = sc.gw(path);
        let mut args = extra.to_vec();
        args.push(&url);
        let r = t.http(Side::Client, &args);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, want),
            "{path}: {r:?}\ningress:\n{}",
            sc.ingress.log_tail(20)
        );
    }

    // nginx saw only opaque POSTs on the rewritten paths: one key-config fetch per outer base
    // URL, then the tunnel requests in order.
    let (lines, entries) = sc.nginx_entries();
    for e in &entries {
        assert_eq!(e.method, "POST", "{e:?}\n{lines:#?}");
        assert!(
            e.uri == "/foo/bar" || e.uri == "/foo/hello",
            "outer path {:?} is not a rewritten one\n{lines:#?}",
            e.uri
        );
        match e.api.as_str() {
            "/tng/tunnel" => assert_eq!(e.content_type, "message/ohttp-chunked-req", "{e:?}"),
            "/tng/key-config" => assert_eq!(e.content_type, "application/json", "{e:?}"),
            other => panic!("unexpected x-tng-ohttp-api {other:?}\n{lines:#?}"),
        }
        assert_eq!(e.status, 200, "{e:?}");
    }
    let by_api = |api: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|e| e.api == api)
            .map(|e| e.uri.as_str())
            .collect()
    };
    assert_eq!(
        by_api("/tng/tunnel"),
        ["/foo/bar", "/foo/hello", "/foo/hello", "/foo/bar"],
        "{lines:#?}"
    );
    // One fetch (and attestation) per egress endpoint: /foo/hello reuses the key attested
    // through /foo/bar, which the egress behind it accepts.
    assert_eq!(by_api("/tng/key-config"), ["/foo/bar"], "{lines:#?}");

    // The ingress verified the egress before using its key: an affirming EAR token under the
    // `default` policy, once for the endpoint.
    let verified = lines_with(&sc.ingress.log(), "server attestation verified");
    assert_eq!(verified.len(), 1, "{verified:#?}");
    for (line, outer) in verified.iter().zip(["/foo/bar"]) {
        let url = format!("url={}", sc.gw(outer));
        assert!(line.contains(&format!("{url} ")), "{url}: {line}");
        let status = line
            .split("ear_status=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap_or_default();
        assert!(
            !status.is_empty() && status.split(',').all(|s| s.ends_with("=affirming")),
            "{line}"
        );
        assert!(line.contains("\"default\""), "policy id: {line}");
    }

    // The egress decrypted exactly the four inner requests, with their original paths.
    let opened = lines_with(&sc.egress.log(), "tunnel request opened");
    assert_eq!(opened.len(), 4, "{opened:#?}");
    for (line, path) in
        opened
            .iter()
            .zip(["/foo/bar/baz", "/foo/hello", "/foo/hello", "/foo/bar/qux"])
    {
        assert!(line.contains(path), "{path}: {line}");
    }
}

#[test]
fn seed_scenario_contraindicated_hardware_fails_closed() {
    if !can_run("seed_scenario_contraindicated_hardware_fails_closed") {
        return;
    }
    let mut sc = Scenario::start("scenario-fail", Some(HARDWARE_97_POLICY));
    let t = &sc.topo;

    // Three attempts, the third on an outer URL that already failed once: each refused at the
    // ingress, the third by a fresh attestation attempt or, within the back-off after the
    // first failure (0.5 s), by that failure's verdict (a failed verification yields no
    // usable key, and does not wedge the ingress either).
    for path in ["/foo/bar/baz", "/foo/hello", "/foo/bar/again"] {
        let r = t.http(
            Side::Client,
            &[
                "-H",
                "content-type: text/plain",
                "--data-binary",
                "must never reach the backend",
                &sc.gw(path),
            ],
        );
        // A verdict about the server (not an unreachable AS): 502, with the reason.
        assert_eq!(
            r.status,
            502,
            "{path}: {r:?}\ningress:\n{}",
            sc.ingress.log_tail(20)
        );
        let body: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {r:?}"));
        assert_eq!(body["code"], "ServerAttestationFailed", "{path}: {r:?}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("server attestation failed: ")
                && message.contains("status is contraindicated"),
            "{path}: the body does not name the failed check: {r:?}"
        );
    }
    let failures = lines_with(&sc.ingress.log(), "status is contraindicated");
    assert_eq!(
        failures.len(),
        3,
        "the ingress log does not name the failed check:\n{}",
        sc.ingress.log_tail(30)
    );
    assert!(
        lines_with(&sc.ingress.log(), "server attestation verified").is_empty(),
        "{}",
        sc.ingress.log_tail(30)
    );

    // nginx saw the key-config fetches (that is how the ingress gets the evidence) and no
    // tunnel request at all.
    let (lines, entries) = sc.nginx_entries();
    let key_fetches: Vec<&str> = entries
        .iter()
        .filter(|e| e.api == "/tng/key-config")
        .map(|e| e.uri.as_str())
        .collect();
    assert!(
        key_fetches == ["/foo/bar", "/foo/hello"]
            || key_fetches == ["/foo/bar", "/foo/hello", "/foo/bar"],
        "{lines:#?}"
    );
    assert!(
        entries.iter().all(|e| e.api == "/tng/key-config"),
        "{lines:#?}"
    );
    assert!(
        lines_with(&sc.egress.log(), "tunnel request opened").is_empty(),
        "the egress decrypted a request"
    );

    // Zero requests at the backend. With `capture_local_traffic` the egress would capture the
    // counter query itself, so it is read after the egress stopped (and removed its rules).
    let status = sc.egress.terminate();
    assert!(status.success(), "egress exit: {status}");
    let t = &sc.topo;
    assert_eq!(
        t.backend_requests(Side::Server, "http://127.0.0.1:8080"),
        0,
        "the backend received a request"
    );
}
