//! The sample attestation stack (`tng-devkit aa` / `tng-devkit as`) and the loopback gateway
//! topology the attestation tests share: backend ← egress (`attest`) ← recording relay ←
//! ingress (`verify`) ← curl.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tng_e2e::net::find;
use tng_e2e::*;

/// A policy affirming every trust claim (what upstream TNG's CI installs as `default`).
pub const AFFIRMING_POLICY: &str =
    "package policy\n\nexecutables := 3\nhardware := 2\nconfiguration := 2\nfile_system := 2\n";

/// A policy whose hardware claim (97) is in the contraindicated AR4SI tier.
pub const CONTRAINDICATING_POLICY: &str =
    "package policy\n\nexecutables := 3\nhardware := 97\nconfiguration := 2\nfile_system := 2\n";

// ---------------------------------------------------------------------------------------------
// Attestation Agent

/// A running `tng-devkit aa` on its own socket (never the default system path).
pub struct Aa {
    pub proc: Proc,
    pub socket: PathBuf,
    dir: PathBuf,
}

impl Aa {
    pub fn start(extra: &[&str]) -> Aa {
        let dir = test_dir("aa");
        let socket = dir.join("aa.sock");
        Self::start_at(dir, socket, extra)
    }

    fn start_at(dir: PathBuf, socket: PathBuf, extra: &[&str]) -> Aa {
        let mut cmd = Command::new(bin("tng-devkit"));
        cmd.arg("aa")
            .arg("--socket")
            .arg(format!("unix://{}", socket.display()))
            .args(extra);
        let mut proc = Proc::spawn("aa", cmd, &dir);
        proc.wait_for_line("attestation agent listening on ", Duration::from_secs(10));
        Aa { proc, socket, dir }
    }

    /// `unix:///…/aa.sock`, the `attest.aa_addr` value.
    pub fn addr(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Stops this agent and starts a new one on the same socket with `extra` flags.
    pub fn restart(&mut self, extra: &[&str]) {
        let status = self.proc.terminate();
        assert!(status.success(), "aa exit on SIGTERM: {status}");
        *self = Self::start_at(self.dir.clone(), self.socket.clone(), extra);
    }
}

// ---------------------------------------------------------------------------------------------
// Attestation Service

/// A running `tng-devkit as` on 127.0.0.1. Its keys persist in its workdir, so a restart keeps
/// the CA that verifiers fetched from `/certificate` at their start.
pub struct As {
    pub proc: Proc,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl As {
    /// Starts a service with the built-in `default` policy plus `policies` (`(id, rego)`), and
    /// `extra` flags.
    pub fn start(policies: &[(&str, &str)], extra: &[&str]) -> As {
        let dir = test_dir("as");
        let mut args: Vec<String> = vec![
            "--workdir".into(),
            dir.join("work").display().to_string(),
            "--persist-keys".into(),
        ];
        for (id, rego) in policies {
            let file = dir.join(format!("{id}.rego"));
            std::fs::write(&file, rego).expect("write policy file");
            args.push("--policy".into());
            args.push(format!("{id}={}", file.display()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(dir, "127.0.0.1:0", args)
    }

    fn launch(dir: PathBuf, listen: &str, args: Vec<String>) -> As {
        let mut cmd = Command::new(bin("tng-devkit"));
        cmd.args(["as", "--listen", listen]).args(&args);
        let mut proc = Proc::spawn("as", cmd, &dir);
        let line = proc.wait_for_line("attestation service listening on ", Duration::from_secs(30));
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        As {
            proc,
            port,
            dir,
            args,
        }
    }

    /// `http://127.0.0.1:PORT`, the `as_addr` value.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The CA certificate of this service's token signer (for `trusted_certs_paths`).
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("work").join("ca.pem")
    }

    /// SIGTERM; afterwards nothing listens on the port.
    pub fn stop(&mut self) {
        let status = self.proc.terminate();
        assert!(status.success(), "as exit on SIGTERM: {status}");
        assert!(
            TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "port {} still accepts after the AS stopped",
            self.port
        );
    }

    /// Starts the service again on the same port, with the same keys, policies and flags.
    pub fn restart(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        *self = Self::launch(self.dir.clone(), &listen, self.args.clone());
        // The log in the same workdir already holds the first run's "listening" line, so
        // readiness is the port accepting again.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the restarted AS does not listen on {}\n{}",
                self.port,
                self.proc.log_tail(20)
            );
            pause(Duration::from_millis(20));
        }
    }

    /// Installs (or replaces) policy `id` through `POST /policy`.
    pub fn set_policy(&self, id: &str, rego: &str) {
        let body = json!({"policy_id": id, "policy": URL_SAFE_NO_PAD.encode(rego)}).to_string();
        let resp = curl_status(&[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body,
            &format!("{}/policy", self.url()),
        ]);
        assert!(
            (200..300).contains(&resp.status),
            "POST /policy {id}: {} {}",
            resp.status,
            resp.text()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration entries

pub fn egress_entry(port: u16, backend_port: u16, attest: Option<Value>) -> Value {
    let mut entry = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": "127.0.0.1", "port": backend_port}},
        // Upstream 2.9.0 requires rotation_interval whenever `key` is written.
        "ohttp": {"key": {"source": "self_generated", "rotation_interval": 300}},
    });
    match attest {
        Some(attest) => entry["attest"] = attest,
        None => entry["no_ra"] = json!(true),
    }
    entry
}

pub fn ingress_entry(port: u16, out_port: u16, verify: Value) -> Value {
    json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": "127.0.0.1", "port": out_port}},
        "ohttp": {},
        "verify": verify,
    })
}

/// `attest` in the background-check model (the default).
pub fn attest_bg(aa: &Aa) -> Value {
    json!({"aa_addr": aa.addr()})
}

/// `attest` in the passport model, converting evidence to a token at `service`.
pub fn attest_passport(aa: &Aa, service: &As) -> Value {
    json!({"model": "passport", "aa_addr": aa.addr(), "as_addr": service.url(),
           "policy_ids": ["default"]})
}

/// `verify` in the background-check model with `policy_ids`.
pub fn verify_bg(service: &As, policy_ids: &[&str]) -> Value {
    json!({"as_addr": service.url(), "policy_ids": policy_ids})
}

// ---------------------------------------------------------------------------------------------
// Topology

/// backend ← egress ← relay ← ingress, all ours, all on loopback.
pub struct Gateway {
    pub backend: Backend,
    pub egress: Tng,
    pub relay: Relay,
    pub ingress: Tng,
    pub ingress_port: u16,
}

impl Gateway {
    /// `attest` = `None` starts a `no_ra` egress.
    pub fn start(attest: Option<Value>, verify: Value) -> Gateway {
        let backend = Backend::start();
        let egress_port = free_port();
        let egress = Tng::launch_named(
            "egress",
            json!({"add_egress": [egress_entry(egress_port, backend.port(), attest)]}),
        );
        let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
        let ingress_port = free_port();
        let ingress = Tng::launch_named(
            "ingress",
            json!({"add_ingress": [ingress_entry(ingress_port, relay.port(), verify)]}),
        );
        Gateway {
            backend,
            egress,
            relay,
            ingress,
            ingress_port,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ingress_port, path)
    }

    /// `POST /echo` with `body` through the tunnel.
    pub fn post_echo(&self, body: &str) -> RawResponse {
        curl_status(&["--data-binary", body, &self.url("/echo")])
    }

    /// Tunnel requests (`x-tng-ohttp-api: /tng/tunnel`) the egress received so far.
    pub fn tunnel_requests(&self) -> usize {
        count(&self.relay.upstream().to_ascii_lowercase(), b"/tng/tunnel")
    }

    /// Key-config requests the egress received so far.
    pub fn key_config_requests(&self) -> usize {
        count(
            &self.relay.upstream().to_ascii_lowercase(),
            b"/tng/key-config",
        )
    }

    /// Both tng logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- ingress log:\n{}\n--- egress log:\n{}",
            self.ingress.log_tail(30),
            self.egress.log_tail(30)
        )
    }

    /// The request succeeded with exactly `body` echoed, and reached the backend.
    pub fn assert_echo(&self, body: &str) {
        let before = self.backend.requests();
        let resp = self.post_echo(body);
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, body),
            "{}",
            self.logs()
        );
        assert_eq!(self.backend.requests(), before + 1);
    }

    /// Once the cause of a refusal is gone, requests succeed again: within the ingress's
    /// back-off after a failed key fetch (0.5 s doubling to at most 5 s), never later.
    pub fn assert_recovers(&self, body: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(12);
        loop {
            let before = self.backend.requests();
            let resp = self.post_echo(body);
            if resp.status == 200 {
                assert_eq!(resp.text(), body, "{}", self.logs());
                assert_eq!(self.backend.requests(), before + 1);
                return;
            }
            assert_eq!(
                self.backend.requests(),
                before,
                "a refused request reached the backend\n{}",
                self.logs()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "no recovery within the back-off: {} {}\n{}",
                resp.status,
                resp.text(),
                self.logs()
            );
            pause(Duration::from_millis(250));
        }
    }

    /// A request is refused by the ingress with `status`, `code` and a message naming
    /// `reason`; nothing reaches the egress's tunnel endpoint or the backend; the ingress log
    /// names the reason too.
    pub fn assert_refused(&self, status: u16, code: &str, reason: &str) -> String {
        let tunnels_before = self.tunnel_requests();
        let backend_before = self.backend.requests();
        let resp = self.post_echo("must never leave the ingress");
        let logs = self.logs();
        assert_eq!(resp.status, status, "body {}\n{logs}", resp.text());
        let body = resp.json();
        assert_eq!(body["code"], code, "body {body}\n{logs}");
        let message = body["message"].as_str().unwrap_or_default().to_string();
        assert!(
            message.contains(reason),
            "message {message:?} does not name {reason:?}\n{logs}"
        );
        assert_eq!(
            self.backend.requests(),
            backend_before,
            "the backend saw the refused request"
        );
        assert_eq!(
            self.tunnel_requests(),
            tunnels_before,
            "the egress received a tunnel request although attestation failed\n{logs}"
        );
        assert!(
            self.ingress.log().contains(reason),
            "the ingress log does not name {reason:?}\n{logs}"
        );
        message
    }

    /// The JWT the ingress accepted for its (only) egress, from the control interface.
    pub fn server_attestation(&self) -> String {
        let status = self.ingress.status_json("/status/ingress/0/ohttp/keys");
        status["servers"][0]["server_attestation"]
            .as_str()
            .unwrap_or_else(|| panic!("no server_attestation in {status}"))
            .to_string()
    }
}

/// The claims of a compact JWS (not verified: the product did that).
pub fn jwt_claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS expected: {token}");
    let bytes = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url claims");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = hay;
    while let Some(pos) = find(rest, needle) {
        n += 1;
        rest = &rest[pos + needle.len()..];
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Upstream TNG

#[allow(unused_imports)]
pub use tng_e2e::upstream::{launch_upstream, upstream_bin};
