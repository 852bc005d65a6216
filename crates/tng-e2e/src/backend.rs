//! The devkit HTTP backend (`tng-devkit backend`), see `crates/tng-devkit/src/backend`.

use std::process::Command;
use std::time::Duration;

use crate::{bin, http_get, test_dir, Proc};

/// A running `tng-devkit backend` on a kernel-chosen loopback port.
pub struct Backend {
    pub proc: Proc,
    addr: String,
}

impl Backend {
    /// Starts the backend and waits (10 s max) for `backend listening on HOST:PORT`.
    pub fn start() -> Backend {
        let dir = test_dir("backend");
        let mut cmd = Command::new(bin("tng-devkit"));
        // Port 0 and parsing the ready line avoids racing other tests for a "free" port.
        cmd.args(["backend", "--listen", "127.0.0.1:0"]);
        let mut proc = Proc::spawn("backend", cmd, &dir);
        let line = proc.wait_for_line("backend listening on ", Duration::from_secs(10));
        let addr = line
            .rsplit("backend listening on ")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Backend { proc, addr }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in backend address")
    }

    /// `http://127.0.0.1:PORT<path>` — direct, bypassing any tunnel.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests served so far, excluding the side channels `/__stats` and `/sse-ack`.
    pub fn requests(&self) -> u64 {
        let (status, body) = http_get(&self.url("/__stats"));
        assert_eq!(status, 200, "backend /__stats: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
        v["requests"].as_u64().expect("requests count")
    }

    /// Acknowledges SSE event `i` of stream `id` (see the backend's `/sse` route).
    pub fn sse_ack(&self, id: &str, i: u64) {
        let (status, body) = http_get(&self.url(&format!("/sse-ack?id={id}&i={i}")));
        assert_eq!(status, 200, "sse-ack: {body}");
    }
}
