//! Who implements a side of the tunnel: our `tng`, or an official upstream release
//! (`target/upstream/<version>/tng`, fetched by `scripts/fetch-upstream.sh`).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tng_e2e::proc::tail;
use tng_e2e::{pause, Proc, Tng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Ours,
    Upstream(&'static str),
}

impl Peer {
    pub fn label(self) -> String {
        match self {
            Peer::Ours => "ours".to_string(),
            Peer::Upstream(v) => format!("upstream-{v}"),
        }
    }
}

use tng_e2e::upstream::spawn_upstream;
pub use tng_e2e::upstream::upstream_bin;

/// Whether every upstream binary among `peers` is present (see [`upstream_bin`]).
pub fn available(peers: &[Peer]) -> bool {
    peers.iter().all(|p| match p {
        Peer::Ours => true,
        Peer::Upstream(v) => upstream_bin(v).is_some(),
    })
}

/// A running ingress or egress of either implementation.
pub enum Node {
    Ours(Tng),
    Upstream(Proc),
}

impl Node {
    /// Launches `config`. Ours: waits for `/readyz`. Upstream: waits until every port of
    /// `listens` has a listening socket — looked up with `ss`, not probed, because a probe
    /// connection to an upstream ingress would open a tunnel and reach the service.
    pub fn launch(peer: Peer, name: &str, config: Value, listens: &[u16]) -> Node {
        match peer {
            Peer::Ours => Node::Ours(Tng::launch_named(name, config)),
            Peer::Upstream(version) => {
                let bin = upstream_bin(version).expect("checked by available()");
                let mut proc = spawn_upstream(&bin, name, &config);
                let deadline = Instant::now() + Duration::from_secs(20);
                while !listens.iter().all(|p| listening(*p)) {
                    if let Some(status) = proc.try_wait() {
                        panic!("{name} exited ({status}); log:\n{}", proc.log_tail(40));
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{name}: not listening on {listens:?} within 20 s; log:\n{}",
                        proc.log_tail(40)
                    );
                    pause(Duration::from_millis(50));
                }
                Node::Upstream(proc)
            }
        }
    }

    pub fn log(&self) -> String {
        match self {
            Node::Ours(t) => t.log(),
            Node::Upstream(p) => p.log(),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Ours only: waits (up to `timeout`) for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        match self {
            Node::Ours(t) => t.wait_for_log(needle, timeout),
            Node::Upstream(_) => panic!("upstream log lines are not part of any contract"),
        }
    }
}

fn ss(args: &[&str]) -> String {
    let out = Command::new("ss")
        .args(args)
        .output()
        .expect("run ss (iproute2)");
    assert!(out.status.success(), "ss {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a TCP socket listens on `port` (any address) in this namespace.
pub fn listening(port: u16) -> bool {
    !ss(&["-Hltn", &format!("sport = :{port}")])
        .trim()
        .is_empty()
}

/// Established TCP connections whose local port is `port`: at an egress listener, the TLS
/// connections the ingresses hold to it.
pub fn established_at(port: u16) -> usize {
    ss(&["-Htn", "state", "established", &format!("sport = :{port}")])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}
