//! The data path's view: handles, guards and the access-log event, checked through the
//! Prometheus text and a JSON log subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tng_telemetry::{
    AccessRecord, Attestation, AttestationFailure, Endpoints, InstanceLabels, Limit, Outcome,
    Telemetry, Transport, ACCESS_LOG_TARGET,
};
use tracing_subscriber::layer::SubscriberExt;

fn ohttp(mode: &str) -> InstanceLabels {
    InstanceLabels {
        mode: mode.into(),
        transport: Transport::Ohttp,
        endpoints: Endpoints::InOut {
            listen: "127.0.0.1:30000".into(),
            upstream: "127.0.0.1:30001".into(),
        },
    }
}

/// Lines of the exposition that start with `prefix` and carry all `labels`.
fn series<'a>(text: &'a str, prefix: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
        .collect()
}

fn value(text: &str, name_and_labels: &str) -> String {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .collect();
    assert_eq!(found.len(), 1, "{name_and_labels} in\n{text}");
    found[0].rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn connection_guard_counts_failures_once_and_ends_on_drop() {
    let t = Telemetry::disabled();
    let m = t.egress(2, ohttp("mapping"));
    let base = r#"direction="egress",id="2",type="mapping",transport="ohttp""#;
    let text = t.prometheus_text();
    assert_eq!(
        value(&text, &format!("tng_connections_total{{{base}}}")),
        "0",
        "series exist at 0"
    );
    assert_eq!(value(&text, "tng_ready"), "0");
    {
        let mut conn = m.connection();
        conn.failed();
        conn.failed();
        conn.rx(5);
        let text = t.prometheus_text();
        assert_eq!(
            value(&text, &format!("tng_connections_active{{{base}}}")),
            "1"
        );
        assert_eq!(
            value(&text, &format!("tng_received_bytes_total{{{base}}}")),
            "5",
            "bytes show before close"
        );
    }
    t.set_live(true);
    let text = t.prometheus_text();
    assert_eq!(
        value(&text, &format!("tng_connections_total{{{base}}}")),
        "1"
    );
    assert_eq!(
        value(&text, &format!("tng_connections_failed_total{{{base}}}")),
        "1"
    );
    assert_eq!(
        value(&text, &format!("tng_connections_active{{{base}}}")),
        "0"
    );
    assert_eq!(
        value(
            &text,
            &format!("tng_connection_duration_seconds_count{{{base}}}")
        ),
        "1"
    );
    assert_eq!(value(&text, "tng_ready"), "1");
}

#[test]
fn security_key_cluster_and_limit_series() {
    let t = Telemetry::disabled();
    let ingress = t.ingress(0, ohttp("mapping"));
    let egress = t.egress(0, ohttp("netfilter"));
    let rats = t.egress(
        1,
        InstanceLabels {
            mode: "mapping".into(),
            transport: Transport::RatsTls,
            endpoints: Endpoints::InOut {
                listen: "0.0.0.0:1".into(),
                upstream: ":2".into(),
            },
        },
    );
    ingress.attestation(Attestation::Verified);
    ingress.attestation(Attestation::Verified);
    ingress.attestation(Attestation::Failed(AttestationFailure::PolicyRejected));
    ingress.key_retry();
    egress.replay_refused();
    egress.key_rotated(SystemTime::now() - Duration::from_secs(120));
    egress.key_rotated(SystemTime::now() - Duration::from_secs(30));
    egress.cluster_members(3, 2);
    rats.limit_hit(Limit::MaxConnections);
    rats.limit_hit(Limit::MaxConnections);
    rats.limit_hit(Limit::BodyReadTimeout);

    let text = t.prometheus_text();
    let ing = r#"direction="ingress",id="0",type="mapping",transport="ohttp""#;
    let eg = r#"direction="egress",id="0",type="netfilter",transport="ohttp""#;
    let rt = r#"direction="egress",id="1",type="mapping",transport="rats_tls""#;
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_attestation_verifications_total{{{ing},result="success"}}"#)
        ),
        "2"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_attestation_verifications_total{{{ing},result="failure"}}"#)
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_attestation_failures_total{{{ing},reason="policy_rejected"}}"#)
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_attestation_failures_total{{{ing},reason="expired"}}"#)
        ),
        "0"
    );
    assert_eq!(
        value(&text, &format!("tng_ohttp_key_retries_total{{{ing}}}")),
        "1"
    );
    assert_eq!(
        value(&text, &format!("tng_ohttp_replays_refused_total{{{eg}}}")),
        "1"
    );
    assert_eq!(
        value(&text, &format!("tng_ohttp_key_rotations_total{{{eg}}}")),
        "2"
    );
    let age: u64 = value(&text, &format!("tng_ohttp_active_key_age_seconds{{{eg}}}"))
        .parse()
        .unwrap();
    assert!((30..120).contains(&age), "age of the newest key, got {age}");
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_cluster_members{{{eg},state="alive"}}"#)
        ),
        "3"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_cluster_members{{{eg},state="serving"}}"#)
        ),
        "2"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_limit_hits_total{{{rt},limit="max_connections"}}"#)
        ),
        "2"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"tng_limit_hits_total{{{rt},limit="body_read_timeout"}}"#)
        ),
        "1"
    );
    // OHTTP-only and egress-only families stay off the entries they do not apply to.
    assert!(series(&text, "tng_ohttp_", &[r#"transport="rats_tls""#]).is_empty());
    assert!(series(&text, "tng_ohttp_key_retries", &[r#"direction="egress""#]).is_empty());
    assert!(series(&text, "tng_cluster_members", &[r#"direction="ingress""#]).is_empty());
    // Metadata and the OpenMetrics terminator.
    assert!(text.contains("# TYPE tng_requests counter\n"), "{text}");
    assert!(text.contains("# TYPE tng_request_duration_seconds histogram\n"));
    assert!(text.contains("# UNIT tng_request_duration_seconds seconds\n"));
    assert!(text.ends_with("# EOF\n"));
    // Bounded cardinality: 3 entries × fixed enums, whatever traffic happened.
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(samples < 400, "{samples} series");
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_with_filter(filter: &str, emit: impl FnOnce()) -> Vec<serde_json::Value> {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(filter))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || writer.clone()),
        );
    tracing::subscriber::with_default(subscriber, emit);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn access_log_is_one_json_event_without_the_query_and_can_be_switched_off() {
    let t = Telemetry::disabled();
    let m = t.ingress(4, ohttp("mapping"));
    let emit = || {
        let span = m.request_span("POST", "/v1/chat?api_key=secret");
        let _entered = span.enter();
        AccessRecord {
            method: Some("POST"),
            path: Some("/v1/chat?api_key=secret"),
            status: Some(200),
            bytes_in: 89,
            bytes_out: 210,
            duration: Duration::from_nanos(6_660_400),
            upstream: "198.18.0.2:8080",
            outcome: Outcome::Ok,
            attested: true,
        }
        .emit(&m, &span);
        AccessRecord {
            method: None,
            path: None,
            status: None,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::from_millis(1),
            upstream: "198.18.0.2:8080",
            outcome: Outcome::UpstreamUnreachable,
            attested: false,
        }
        .emit(&m, &span);
    };
    let lines = log_with_filter("info", emit);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ok = &lines[0];
    assert_eq!(ok["target"], ACCESS_LOG_TARGET);
    assert_eq!(ok["level"], "INFO");
    let f = &ok["fields"];
    assert_eq!(f["message"], "POST /v1/chat 200 6.66ms");
    assert_eq!(f["direction"], "ingress");
    assert_eq!(f["id"], "4");
    assert_eq!(f["transport"], "ohttp");
    assert_eq!(f["method"], "POST");
    assert_eq!(f["path"], "/v1/chat");
    assert_eq!(f["status"], 200);
    assert_eq!(f["bytes_in"], 89);
    assert_eq!(f["bytes_out"], 210);
    // Whole microseconds: 6,660.4 µs is 6.66, not 6.6604.
    assert_eq!(f["duration_ms"], 6.66);
    assert_eq!(f["upstream"], "198.18.0.2:8080");
    assert_eq!(f["outcome"], "ok");
    assert_eq!(f["attested"], true);
    assert_eq!(ok["span"]["name"], "request");
    assert!(!ok.to_string().contains("secret"), "{ok}");
    let failed = &lines[1];
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["fields"]["outcome"], "upstream_unreachable");
    assert_eq!(
        failed["fields"]["message"],
        "stream 0 B in, 0 B out, 1.00ms, upstream_unreachable"
    );
    assert!(failed["fields"].get("status").is_none() && failed["fields"].get("method").is_none());

    let lines = log_with_filter("info,tng::access_log=off", emit);
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test]
async fn otlp_over_https_http_is_refused_at_startup() {
    let trace = tng_config::TraceConfig {
        exporters: vec![tng_config::TraceExporter::Otlp(tng_config::OtlpExporter {
            protocol: tng_config::OtlpProtocol::HttpJson,
            endpoint: "https://collector.example/v1/traces".into(),
            headers: Vec::new(),
        })],
    };
    let err = Telemetry::new(&tng_config::MetricConfig::default(), &trace, "t")
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "OTLP over HTTPS (https://collector.example/v1/traces) is not supported by this implementation; use an http:// collector or protocol `grpc`"
    );
}
