//! A real Prometheus server scrapes `/metrics` (served from `Telemetry::prometheus_text`) while
//! the test drives the API; Prometheus's query API must then report exactly what was driven.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{response, serve};
use tng_config::{MetricConfig, TraceConfig};
use tng_e2e::prometheus::PrometheusServer;
use tng_telemetry::{Endpoints, InstanceLabels, Telemetry, Transport, PROMETHEUS_CONTENT_TYPE};

/// Runs the (blocking, curl-based) Prometheus harness off the test's runtime threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
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

    let prometheus =
        Arc::new(blocking(move || PrometheusServer::start(&[("tng", target.to_string())])).await);
    let eventually = |q: String, want: &'static str| {
        let prometheus = Arc::clone(&prometheus);
        blocking(move || prometheus.eventually(&q, want))
    };

    eventually(r#"up{job="tng"}"#.into(), "1").await;
    let ing = r#"direction="ingress",id="0",type="mapping",transport="ohttp""#;
    for (class, n) in [
        ("2xx", "7"),
        ("4xx", "3"),
        ("5xx", "2"),
        ("none", "1"),
        ("3xx", "0"),
    ] {
        eventually(
            format!(r#"tng_requests_total{{{ing},status_class="{class}"}}"#),
            n,
        )
        .await;
    }
    eventually(format!("tng_request_duration_seconds_count{{{ing}}}"), "13").await;
    eventually(
        format!(r#"tng_request_duration_seconds_bucket{{{ing},le="0.01"}}"#),
        "10",
    )
    .await;
    eventually(
        format!(r#"tng_request_duration_seconds_bucket{{{ing},le="0.05"}}"#),
        "12",
    )
    .await;
    eventually(
        format!(r#"tng_request_duration_seconds_bucket{{{ing},le="+Inf"}}"#),
        "13",
    )
    .await;
    eventually(
        format!("tng_request_duration_seconds_sum{{{ing}}}"),
        "0.209",
    )
    .await;
    eventually(format!("tng_connections_total{{{ing}}}"), "1").await;
    eventually(
        format!("tng_connection_duration_seconds_count{{{ing}}}"),
        "1",
    )
    .await;
    eventually(format!("tng_received_bytes_total{{{ing}}}"), "1000").await;
    eventually(format!("tng_sent_bytes_total{{{ing}}}"), "2500").await;
    let eg = r#"direction="egress",id="0",type="netfilter",transport="rats_tls""#;
    eventually(format!("tng_connections_failed_total{{{eg}}}"), "4").await;
    eventually(format!("tng_connections_active{{{eg}}}"), "0").await;
    eventually(format!(r#"tng_instance_info{{{eg},listen="40000"}}"#), "1").await;
    eventually("tng_ready".into(), "1").await;

    // Values move while Prometheus watches: two more 2xx show up at the next scrape.
    ingress.request_done(Some(201), Duration::from_millis(1));
    ingress.request_done(Some(204), Duration::from_millis(1));
    eventually(
        format!(r#"tng_requests_total{{{ing},status_class="2xx"}}"#),
        "9",
    )
    .await;
    eventually(format!("tng_request_duration_seconds_count{{{ing}}}"), "15").await;
}
