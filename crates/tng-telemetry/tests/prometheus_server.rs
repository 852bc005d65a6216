//! A real Prometheus server scrapes `/metrics` (served from `Telemetry::prometheus_text`) while
//! the test drives the API; Prometheus's query API must then report exactly what was driven.

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use support::{get, response, serve};
use tng_config::{MetricConfig, TraceConfig};
use tng_telemetry::{Endpoints, InstanceLabels, Telemetry, Transport, PROMETHEUS_CONTENT_TYPE};

fn prometheus_binary() -> String {
    for path in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
        if std::path::Path::new(path).exists() {
            return path.to_owned();
        }
    }
    panic!("prometheus is not installed (scripts/deps.sh installs it)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single sample value of an instant query, `None` while Prometheus has none.
async fn query(api: &str, q: &str) -> Option<String> {
    let (status, _, body) = get(&format!("{api}/api/v1/query?query={}", encode_query(q))).await;
    assert_eq!(status, 200, "{q}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
    let result = json["data"]["result"].as_array()?;
    assert!(result.len() <= 1, "{q}: several series: {body}");
    result.first()?["value"][1].as_str().map(str::to_owned)
}

/// Polls until the query yields `want` (Prometheus scrapes every second); panics with the last
/// value seen when it never does.
async fn eventually(api: &str, q: &str, want: &str) {
    let mut last = None;
    for _ in 0..120 {
        last = query(api, q).await;
        if last.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{q}: wanted {want}, last value {last:?}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_request_counts_by_status_class_and_histograms() {
    let telemetry = Arc::new(
        Telemetry::new(&MetricConfig::default(), &TraceConfig::default(), "test")
            .expect("telemetry"),
    );
    let ingress = telemetry.ingress(
        0,
        InstanceLabels {
            mode: "mapping".into(),
            transport: Transport::Ohttp,
            endpoints: Endpoints::InOut {
                listen: "127.0.0.1:30000".into(),
                upstream: "127.0.0.1:30001".into(),
            },
        },
    );
    let egress = telemetry.egress(
        0,
        InstanceLabels {
            mode: "netfilter".into(),
            transport: Transport::RatsTls,
            endpoints: Endpoints::ListenPort(40000),
        },
    );
    telemetry.set_live(true);

    let served = Arc::clone(&telemetry);
    let target = serve(move |req| {
        let served = Arc::clone(&served);
        async move {
            if req.path != "/metrics" {
                return response(404, "");
            }
            let mut r = response(200, &served.prometheus_text());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
            );
            r
        }
    })
    .await;

    // 7 × 2xx, 3 × 4xx, 2 × 5xx, 1 without a response, on one keep-alive connection of the
    // ingress; durations chosen so the 10 ms bucket holds exactly 10 of them.
    let conn = ingress.connection();
    let plan: [(Option<u16>, u64, usize); 4] = [
        (Some(200), 2, 7),
        (Some(404), 5, 3),
        (Some(503), 40, 2),
        (None, 100, 1),
    ];
    for (status, ms, count) in plan {
        for _ in 0..count {
            ingress.request_done(status, Duration::from_millis(ms));
        }
    }
    conn.rx(1000);
    conn.tx(2500);
    drop(conn);
    for _ in 0..4 {
        let mut c = egress.connection();
        c.failed();
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tng\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let child = std::process::Command::new(prometheus_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _child = KillOnDrop(child);
    let api = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..120 {
        if let Ok((status, _, _)) = support::try_get(&format!("{api}/-/ready")).await {
            if status == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "prometheus never became ready on {api}");

    eventually(&api, r#"up{job="tng"}"#, "1").await;
    let ing = r#"direction="ingress",id="0",type="mapping",transport="ohttp""#;
    for (class, n) in [
        ("2xx", "7"),
        ("4xx", "3"),
        ("5xx", "2"),
        ("none", "1"),
        ("3xx", "0"),
    ] {
        eventually(
            &api,
            &format!(r#"tng_requests_total{{{ing},status_class="{class}"}}"#),
            n,
        )
        .await;
    }
    eventually(
        &api,
        &format!("tng_request_duration_seconds_count{{{ing}}}"),
        "13",
    )
    .await;
    eventually(
        &api,
        &format!(r#"tng_request_duration_seconds_bucket{{{ing},le="0.01"}}"#),
        "10",
    )
    .await;
    eventually(
        &api,
        &format!(r#"tng_request_duration_seconds_bucket{{{ing},le="0.05"}}"#),
        "12",
    )
    .await;
    eventually(
        &api,
        &format!(r#"tng_request_duration_seconds_bucket{{{ing},le="+Inf"}}"#),
        "13",
    )
    .await;
    eventually(
        &api,
        &format!("tng_request_duration_seconds_sum{{{ing}}}"),
        "0.209",
    )
    .await;
    eventually(&api, &format!("tng_connections_total{{{ing}}}"), "1").await;
    eventually(
        &api,
        &format!("tng_connection_duration_seconds_count{{{ing}}}"),
        "1",
    )
    .await;
    eventually(&api, &format!("tng_received_bytes_total{{{ing}}}"), "1000").await;
    eventually(&api, &format!("tng_sent_bytes_total{{{ing}}}"), "2500").await;
    let eg = r#"direction="egress",id="0",type="netfilter",transport="rats_tls""#;
    eventually(&api, &format!("tng_connections_failed_total{{{eg}}}"), "4").await;
    eventually(&api, &format!("tng_connections_active{{{eg}}}"), "0").await;
    eventually(
        &api,
        &format!(r#"tng_instance_info{{{eg},listen="40000"}}"#),
        "1",
    )
    .await;
    eventually(&api, "tng_ready", "1").await;

    // Values move while Prometheus watches: two more 2xx show up at the next scrape.
    ingress.request_done(Some(201), Duration::from_millis(1));
    ingress.request_done(Some(204), Duration::from_millis(1));
    eventually(
        &api,
        &format!(r#"tng_requests_total{{{ing},status_class="2xx"}}"#),
        "9",
    )
    .await;
    eventually(
        &api,
        &format!("tng_request_duration_seconds_count{{{ing}}}"),
        "15",
    )
    .await;
}
