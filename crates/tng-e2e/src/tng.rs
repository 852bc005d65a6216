//! Launching `tng` processes and standard loopback tunnels.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::proc::tail;
use crate::{bin, free_port, http_get, test_dir, Proc};

/// A running `tng launch` with its control interface on 127.0.0.1.
pub struct Tng {
    pub proc: Proc,
    control_port: u16,
    log_file: std::path::PathBuf,
    pub dir: std::path::PathBuf,
}

impl Tng {
    /// Launches `tng --log-file <dir>/tng.log launch --config-file <dir>/config.json` and
    /// waits (20 s) for `/readyz` = 200. A `control_interface.restful` on a free port is added
    /// when the config has none. `RUST_LOG` defaults to `info`.
    pub fn launch(config: Value) -> Tng {
        Self::launch_named("tng", config)
    }

    /// Like [`Tng::launch`], with `name` used for the temp dir and log lines.
    pub fn launch_named(name: &str, mut config: Value) -> Tng {
        let dir = test_dir(name);
        if config.get("control_interface").is_none() {
            config["control_interface"] =
                json!({"restful": {"host": "127.0.0.1", "port": free_port()}});
        }
        let control_port = config["control_interface"]["restful"]["port"]
            .as_u64()
            .expect("control_interface.restful.port") as u16;
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap())
            .expect("write config");
        let log_file = dir.join("tng.log");
        let mut cmd = Command::new(bin("tng"));
        cmd.arg("--log-file")
            .arg(&log_file)
            .arg("launch")
            .arg("--config-file")
            .arg(&config_path);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        println!(
            "[e2e] {name}: config {} log {}",
            config_path.display(),
            log_file.display()
        );
        let mut tng = Tng {
            proc: Proc::spawn(name, cmd, &dir),
            control_port,
            log_file,
            dir,
        };
        tng.wait_ready(Duration::from_secs(20));
        tng
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/readyz", self.control_url());
        loop {
            if http_get(&url).0 == 200 {
                return;
            }
            if let Some(status) = self.proc.try_wait() {
                panic!(
                    "{} exited ({status}) before /readyz; log:\n{}",
                    self.proc.name(),
                    self.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: /readyz not 200 within {timeout:?}; log:\n{}",
                    self.proc.name(),
                    self.log_tail(40)
                );
            }
            crate::pause(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<control port>`.
    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }

    /// GET a control-interface path, expecting 200 and a JSON body.
    pub fn status_json(&self, path: &str) -> Value {
        let (status, body) = http_get(&format!("{}{}", self.control_url(), path));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// The sum of the `/metrics` samples of `name` whose labels include every `key="value"`
    /// of `labels` (0 when there is none).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, body) = http_get(&format!("{}/metrics", self.control_url()));
        assert_eq!(status, 200, "GET /metrics: {body}");
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.rsplit_once(' '))
            .filter(|(series, _)| {
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|(_, value)| value.parse::<f64>().ok())
            .sum()
    }

    /// The `public_key`s listed by `/status/egress/<id>/ohttp/keys`.
    pub fn egress_public_keys(&self, id: usize) -> Vec<String> {
        let v = self.status_json(&format!("/status/egress/{id}/ohttp/keys"));
        v["local_keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k["public_key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The tng log file (`--log-file`) followed by its stdout/stderr.
    pub fn log(&self) -> String {
        let file = std::fs::read(&self.log_file)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        format!("{file}{}", self.proc.log())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.proc.peak_rss_kib()
    }

    /// Waits (up to `timeout`) for a log line containing `needle`; returns it or panics.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no log line containing {needle:?}; log:\n{}",
                    self.proc.name(),
                    self.log_tail(40)
                );
            }
            crate::pause(Duration::from_millis(20));
        }
    }

    /// Runs `tng launch --config-content <text>` expecting it to exit by itself within 10 s
    /// (no control interface is added). Returns `(exit code, stderr)`.
    pub fn launch_expect_failure(config_text: &str) -> (Option<i32>, String) {
        let dir = test_dir("tng-fail");
        let mut cmd = Command::new(bin("tng"));
        cmd.arg("--log-file")
            .arg(dir.join("tng.log"))
            .arg("launch")
            .arg("--config-content")
            .arg(config_text)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tng");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!(
                    "tng kept running with config {config_text}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            crate::pause(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("collect output");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Merges the keys of `extra` (an object) into `base` (an object), recursively for objects.
pub fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// Starts an egress `127.0.0.1:<free> -> backend_addr` with `"ohttp": {}` and `no_ra`;
/// `extra` is merged into the `add_egress[0]` object. Returns the egress and its port.
pub fn launch_egress(backend_addr: &str, extra: Value) -> (Tng, u16) {
    let port = free_port();
    let (bhost, bport) = split_addr(backend_addr);
    let mut entry = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": bhost, "port": bport}},
        "ohttp": {},
        "no_ra": true
    });
    merge(&mut entry, &extra);
    (
        Tng::launch_named("egress", json!({"add_egress": [entry]})),
        port,
    )
}

/// Starts an ingress `127.0.0.1:<free> -> out_addr` (an egress, or a relay in front of one)
/// with `"ohttp": {}` and `no_ra`; `extra` is merged into `add_ingress[0]`.
pub fn launch_ingress(out_addr: &str, extra: Value) -> (Tng, u16) {
    let port = free_port();
    let (host, oport) = split_addr(out_addr);
    let mut entry = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": host, "port": oport}},
        "ohttp": {},
        "no_ra": true
    });
    merge(&mut entry, &extra);
    (
        Tng::launch_named("ingress", json!({"add_ingress": [entry]})),
        port,
    )
}

/// An egress + ingress pair on loopback in front of a backend.
pub struct Tunnel {
    pub egress: Tng,
    pub ingress: Tng,
    pub egress_port: u16,
    pub ingress_port: u16,
}

impl Tunnel {
    /// `http://127.0.0.1:<ingress port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ingress_port, path)
    }

    /// `127.0.0.1:<egress port>`.
    pub fn egress_addr(&self) -> String {
        format!("127.0.0.1:{}", self.egress_port)
    }

    pub fn ingress_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ingress_port)
    }
}

/// The standard loopback tunnel: curl → ingress → egress → backend. The extra JSON objects are
/// merged into the `add_egress[0]` / `add_ingress[0]` entries (e.g. `{"ohttp": {"key": …}}`).
pub fn tunnel(backend_addr: &str, egress_extra: Value, ingress_extra: Value) -> Tunnel {
    let (egress, egress_port) = launch_egress(backend_addr, egress_extra);
    let (ingress, ingress_port) =
        launch_ingress(&format!("127.0.0.1:{egress_port}"), ingress_extra);
    Tunnel {
        egress,
        ingress,
        egress_port,
        ingress_port,
    }
}

fn split_addr(addr: &str) -> (String, u16) {
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    (host.to_string(), port.parse().expect("numeric port"))
}
