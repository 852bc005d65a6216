//! The `stdout` and `falcon` exporters: every series of every metric, in upstream's shapes
//! (observability spec §3.1, §3.2), with a final export at shutdown.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{drive, driven_value, four_instances, response, serve, Received};
use tng_config::{FalconExporter, MetricConfig, MetricExporter, TraceConfig};
use tng_telemetry::{Telemetry, STDOUT_METRICS_TARGET};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const NAMES: [&str; 5] = [
    "cx_total",
    "cx_active",
    "cx_failed",
    "tx_bytes_total",
    "rx_bytes_total",
];

fn falcon(server_url: String, step: u64) -> MetricConfig {
    MetricConfig {
        exporters: vec![MetricExporter::Falcon(FalconExporter {
            server_url,
            endpoint: "test-node".into(),
            tags: vec![
                ("namespace".into(), "ns1".into()),
                ("ingress_id".into(), "tag-loses".into()),
                ("app".into(), "tng".into()),
            ],
            step,
        })],
    }
}

async fn falcon_receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let addr = serve(move |req| {
        log.lock().unwrap().push(req);
        async move { response(status, "boom") }
    })
    .await;
    (format!("http://{addr}"), seen)
}

/// The tags string upstream builds for instance `i` (config tags first, an attribute named like
/// a tag replacing it in place).
fn tags_of(i: usize) -> String {
    let attrs: [&[(&str, &str)]; 4] = [
        &[
            ("ingress_type", "mapping"),
            ("ingress_id", "0"),
            ("ingress_in", "127.0.0.1:30000"),
            ("ingress_out", "127.0.0.1:30001"),
        ],
        &[
            ("ingress_type", "http_proxy"),
            ("ingress_id", "1"),
            ("ingress_proxy_listen", "0.0.0.0:41000"),
        ],
        &[
            ("egress_type", "mapping"),
            ("egress_id", "0"),
            ("egress_in", "127.0.0.1:30001"),
            ("egress_out", "127.0.0.1:30080"),
        ],
        &[
            ("egress_type", "netfilter"),
            ("egress_id", "1"),
            ("egress_listen_port", "40000"),
        ],
    ];
    let ingress = attrs[i].iter().any(|(k, _)| *k == "ingress_id");
    let mut parts = vec!["namespace=ns1".to_owned()];
    let own = |k: &str| attrs[i].iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    parts.push(format!(
        "ingress_id={}",
        own("ingress_id").unwrap_or("tag-loses")
    ));
    parts.push("app=tng".to_owned());
    for (k, v) in attrs[i] {
        if !(ingress && *k == "ingress_id") {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falcon_push_carries_every_series_in_upstreams_shape() {
    let (url, seen) = falcon_receiver(200).await;
    let telemetry = Telemetry::new(&falcon(url, 3600), &TraceConfig::default(), "2.12.0").unwrap();
    let instances = four_instances(&telemetry);
    let _open = drive(&instances);
    telemetry.set_live(true);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    telemetry.shutdown().await;
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one final push (step is an hour)");
    let push = &seen[0];
    assert_eq!(push.method, http::Method::POST);
    assert_eq!(push.path, "/v1/push");
    assert_eq!(push.headers["content-type"], "application/json");
    assert_eq!(push.headers["user-agent"], "tng/2.12.0");
    let body = std::str::from_utf8(&push.body).unwrap();
    let samples: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
    assert_eq!(
        samples.len(),
        5 * 4 + 1,
        "every series of every metric: {body}"
    );
    let timestamp = samples[0]["timestamp"].as_u64().unwrap();
    assert!((before..=after).contains(&timestamp));
    let mut expected = String::from("[");
    for name in NAMES {
        for i in 0..4 {
            expected.push_str(&format!(
                r#"{{"endpoint":"test-node","metric":"{name}","value":{},"step":3600,"counterType":"COUNTER","tags":"{}","timestamp":{timestamp}}},"#,
                driven_value(name, i),
                tags_of(i)
            ));
        }
    }
    expected.push_str(&format!(
        r#"{{"endpoint":"test-node","metric":"live","value":1,"step":3600,"counterType":"GAUGE","tags":"namespace=ns1,ingress_id=tag-loses,app=tng","timestamp":{timestamp}}}]"#
    ));
    assert_eq!(body, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falcon_retries_five_times_then_gives_up_and_url_is_concatenated() {
    let (url, seen) = falcon_receiver(500).await;
    let telemetry = Telemetry::new(
        &falcon(format!("{url}/"), 3600),
        &TraceConfig::default(),
        "2.12.0",
    )
    .unwrap();
    let _ = four_instances(&telemetry);
    telemetry.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "5 attempts, then the export is dropped");
    assert!(seen
        .iter()
        .all(|r| r.path == "//v1/push" && r.body == seen[0].body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falcon_pushes_every_step() {
    let (url, seen) = falcon_receiver(200).await;
    let telemetry = Telemetry::new(&falcon(url, 1), &TraceConfig::default(), "2.12.0").unwrap();
    let instances = four_instances(&telemetry);
    instances[0].connection().tx(7);
    // Periodic pushes arrive while running (bounded wait, no timing assertion).
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.lock().unwrap().len() >= 2, "no periodic push");
    let body = String::from_utf8(seen.lock().unwrap()[0].body.to_vec()).unwrap();
    assert!(
        body.contains(r#""metric":"tx_bytes_total","value":7,"step":1"#),
        "{body}"
    );
    telemetry.shutdown().await;
}

/// Captures `current metrics` events (message and the `metrics` field) from the stdout exporter.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, String, String)>>>);

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct V(String, String);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.0 = format!("{value:?}"),
                    "metrics" => self.1 = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut v = V(String::new(), String::new());
        event.record(&mut v);
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_owned(), v.0, v.1));
    }
}

// Current-thread runtime: the exporter task runs on the thread the capturing subscriber is
// installed on.
#[tokio::test]
async fn stdout_logs_every_series_in_upstreams_debug_shape() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let metric = MetricConfig {
        exporters: vec![MetricExporter::Stdout { step: 3600 }],
    };
    let telemetry = Telemetry::new(&metric, &TraceConfig::default(), "2.12.0").unwrap();
    let instances = four_instances(&telemetry);
    let _open = drive(&instances);
    telemetry.set_live(true);
    telemetry.shutdown().await;

    let events: Vec<_> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(target, _, _)| target == STDOUT_METRICS_TARGET)
        .cloned()
        .collect();
    assert_eq!(events.len(), 1, "the final export");
    let (_, message, metrics) = &events[0];
    assert_eq!(message, "current metrics");
    let time = regex::Regex::new(r"time: SystemTime \{ tv_sec: \d+, tv_nsec: \d+ \}").unwrap();
    assert_eq!(time.find_iter(metrics).count(), 21);
    let normalised = time.replace_all(metrics, "time: T");
    let attrs: [&str; 4] = [
        r#"{"ingress_type": "mapping", "ingress_id": "0", "ingress_in": "127.0.0.1:30000", "ingress_out": "127.0.0.1:30001"}"#,
        r#"{"ingress_type": "http_proxy", "ingress_id": "1", "ingress_proxy_listen": "0.0.0.0:41000"}"#,
        r#"{"egress_type": "mapping", "egress_id": "0", "egress_in": "127.0.0.1:30001", "egress_out": "127.0.0.1:30080"}"#,
        r#"{"egress_type": "netfilter", "egress_id": "1", "egress_listen_port": "40000"}"#,
    ];
    let mut items = Vec::new();
    for name in NAMES {
        for (i, a) in attrs.iter().enumerate() {
            items.push(format!(
                "SimpleMetric {{ name: \"{name}\", value: Number({}), value_type: Counter, attributes: {a}, time: T }}",
                driven_value(name, i)
            ));
        }
    }
    items.push(
        "SimpleMetric { name: \"live\", value: Number(1), value_type: Gauge, attributes: {}, time: T }"
            .to_owned(),
    );
    assert_eq!(normalised, format!("[{}]", items.join(", ")));
}
