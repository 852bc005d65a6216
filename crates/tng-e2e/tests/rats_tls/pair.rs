//! The loopback topology of most tests: an egress with two mapping entries (the devkit HTTP
//! backend, and the TCP echo service), an ingress with two mapping entries to them.
//!
//! ```text
//! client ─▶ ingress :http ══ rats-TLS ══▶ egress :http ─▶ devkit backend
//! client ─▶ ingress :raw  ══ rats-TLS ══▶ egress :raw  ─▶ echo service
//! ```

use serde_json::{json, Value};
use tng_e2e::{free_port, Backend};

use super::apps::EchoServer;
use super::peers::{available, Node, Peer};

pub fn mapping(in_port: u16, out_port: u16) -> Value {
    json!({"in": {"host": "127.0.0.1", "port": in_port},
           "out": {"host": "127.0.0.1", "port": out_port}})
}

/// `{"multiplex": m}`.
pub fn framing(multiplex: bool) -> Value {
    json!({ "multiplex": multiplex })
}

pub fn mode_label(multiplex: bool) -> &'static str {
    if multiplex {
        "multiplex"
    } else {
        "raw"
    }
}

/// A rats-TLS mapping entry without attestation; the same JSON for both implementations.
pub fn entry(in_port: u16, out_port: u16, rats_tls: &Value) -> Value {
    json!({"mapping": mapping(in_port, out_port), "no_ra": true, "rats_tls": rats_tls})
}

/// An egress whose port `http` leads to the backend and `raw` to the echo service.
pub struct Egress {
    pub node: Node,
    pub http: u16,
    pub raw: u16,
}

impl Egress {
    pub fn launch(peer: Peer, rats_tls: &Value, backend: &Backend, echo: &EchoServer) -> Egress {
        Self::launch_with(peer, rats_tls, backend, echo, json!({}))
    }

    /// `extra` is merged into the HTTP entry (e.g. `direct_forward`).
    pub fn launch_with(
        peer: Peer,
        rats_tls: &Value,
        backend: &Backend,
        echo: &EchoServer,
        extra: Value,
    ) -> Egress {
        let (http, raw) = (free_port(), free_port());
        let mut http_entry = entry(http, backend.port(), rats_tls);
        tng_e2e::tng::merge(&mut http_entry, &extra);
        let config = json!({"add_egress": [http_entry, entry(raw, echo.port(), rats_tls)]});
        let name = format!("{}-egress", peer.label());
        Egress {
            node: Node::launch(peer, &name, config, &[http, raw]),
            http,
            raw,
        }
    }
}

pub struct Pair {
    pub name: String,
    pub ingress: Node,
    pub egress: Egress,
    pub backend: Backend,
    pub echo: EchoServer,
    /// Ingress port leading to the HTTP backend.
    pub http: u16,
    /// Ingress port leading to the echo service.
    pub raw: u16,
}

impl Pair {
    /// `None` when an upstream binary is missing outside CI (the test then returns).
    pub fn start(
        ingress: Peer,
        egress: Peer,
        ingress_rats_tls: Value,
        egress_rats_tls: Value,
    ) -> Option<Pair> {
        if !available(&[ingress, egress]) {
            return None;
        }
        let name = format!(
            "{} ingress {ingress_rats_tls} -> {} egress {egress_rats_tls}",
            ingress.label(),
            egress.label()
        );
        println!("[rats-tls] topology: {name}");
        let backend = Backend::start();
        let echo = EchoServer::start();
        let egress_node = Egress::launch(egress, &egress_rats_tls, &backend, &echo);
        let (http, raw) = (free_port(), free_port());
        let config = json!({"add_ingress": [
            entry(http, egress_node.http, &ingress_rats_tls),
            entry(raw, egress_node.raw, &ingress_rats_tls),
        ]});
        let ingress_node = Node::launch(
            ingress,
            &format!("{}-ingress", ingress.label()),
            config,
            &[http, raw],
        );
        Some(Pair {
            name,
            ingress: ingress_node,
            egress: egress_node,
            backend,
            echo,
            http,
            raw,
        })
    }

    /// Same framing on both sides.
    pub fn symmetric(ingress: Peer, egress: Peer, multiplex: bool) -> Option<Pair> {
        Self::start(ingress, egress, framing(multiplex), framing(multiplex))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// Log tails of both gateways, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "[{}]\n--- ingress log (tail) ---\n{}\n--- egress log (tail) ---\n{}",
            self.name,
            self.ingress.log_tail(25),
            self.egress.node.log_tail(25)
        )
    }
}
