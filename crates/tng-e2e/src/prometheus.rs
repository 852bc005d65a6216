//! A real Prometheus server (Debian's `prometheus`) scraping targets every second, and its
//! instant-query API.

use std::process::Command;
use std::time::Duration;

use crate::net::{free_port, http_get};
use crate::{pause, test_dir, Proc};

pub struct PrometheusServer {
    pub proc: Proc,
    api: String,
}

fn binary() -> &'static str {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("prometheus is not installed (scripts/deps.sh installs it)")
}

impl PrometheusServer {
    /// Starts Prometheus scraping `/metrics` of each `(job, host:port)` every second and waits
    /// until it is ready.
    pub fn start(targets: &[(&str, String)]) -> PrometheusServer {
        let dir = test_dir("prometheus");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", cmd, &dir);
        let server = PrometheusServer {
            proc,
            api: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..120 {
            if http_get(&format!("{}/-/ready", server.api)).0 == 200 {
                return server;
            }
            pause(Duration::from_millis(500));
        }
        panic!(
            "prometheus never became ready on {}:\n{}",
            server.api,
            server.proc.log()
        );
    }

    /// The single sample value of an instant query, `None` while Prometheus has none.
    pub fn query(&self, q: &str) -> Option<String> {
        let (status, body) = http_get(&format!(
            "{}/api/v1/query?query={}",
            self.api,
            encode_query(q)
        ));
        assert_eq!(status, 200, "{q}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
        let result = json["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{q}: several series: {body}");
        result.first()?["value"][1].as_str().map(str::to_owned)
    }

    /// Polls until the query yields `want` (Prometheus scrapes every second); panics with the
    /// last value seen when it never does within a minute.
    pub fn eventually(&self, q: &str, want: &str) {
        let mut last = None;
        for _ in 0..120 {
            last = self.query(q);
            if last.as_deref() == Some(want) {
                return;
            }
            pause(Duration::from_millis(500));
        }
        panic!("{q}: wanted {want}, last value {last:?}");
    }
}

fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
