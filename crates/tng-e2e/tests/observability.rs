//! The gateways' telemetry seen by real consumers: a Prometheus server scraping both gateways'
//! `/metrics`, and an OTLP receiver (official protobuf definitions, gRPC and HTTP) getting
//! every series of a process with two ingress and two egress entries, and one trace per
//! request across both gateways.

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use serde_json::{json, Value};
use tng_e2e::otlp::{attr, string_attrs, OtlpReceiver};
use tng_e2e::prometheus::PrometheusServer;
use tng_e2e::*;

fn control_addr(t: &Tng) -> String {
    t.control_url().trim_start_matches("http://").to_owned()
}

#[test]
fn prometheus_counts_each_request_through_both_gateways_by_status_class() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let prometheus = PrometheusServer::start(&[
        ("ingress", control_addr(&t.ingress)),
        ("egress", control_addr(&t.egress)),
    ]);
    prometheus.eventually(r#"up{job="ingress"}"#, "1");
    prometheus.eventually(r#"up{job="egress"}"#, "1");

    let plan = [(200, 5), (404, 2), (503, 1)];
    for (code, count) in plan {
        for _ in 0..count {
            let r = curl_status(&[&t.url(&format!("/status?code={code}"))]);
            assert_eq!(r.status, code, "{}", r.text());
        }
    }

    for side in ["ingress", "egress"] {
        let labels =
            format!(r#"job="{side}",direction="{side}",id="0",type="mapping",transport="ohttp""#);
        for (class, want) in [("2xx", "5"), ("4xx", "2"), ("5xx", "1")] {
            prometheus.eventually(
                &format!(r#"tng_requests_total{{{labels},status_class="{class}"}}"#),
                want,
            );
        }
        prometheus.eventually(&format!(r#"sum(tng_requests_total{{{labels}}})"#), "8");
        prometheus.eventually(
            &format!("tng_request_duration_seconds_count{{{labels}}}"),
            "8",
        );
        prometheus.eventually(
            &format!(r#"tng_request_duration_seconds_bucket{{{labels},le="+Inf"}}"#),
            "8",
        );
    }
    prometheus.eventually(r#"tng_ready{job="ingress"}"#, "1");
    prometheus.eventually(r#"tng_ready{job="egress"}"#, "1");
}

/// One process: ingress 0 (OHTTP) → egress 0 (OHTTP) and ingress 1 (rats-TLS) → egress 1
/// (rats-TLS), all on loopback in front of one backend, exporting to `metric` and `trace`.
fn four_entries(backend: &Backend, metric: Value, trace: Value) -> (Tng, [u16; 4]) {
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let [in0, in1, eg0, eg1] = ports;
    let bport = backend.port();
    let mapping = |from: u16, to: u16| json!({"in": {"host": "127.0.0.1", "port": from}, "out": {"host": "127.0.0.1", "port": to}});
    let config = json!({
        "add_ingress": [
            {"mapping": mapping(in0, eg0), "ohttp": {}, "no_ra": true},
            {"mapping": mapping(in1, eg1), "no_ra": true},
        ],
        "add_egress": [
            {"mapping": mapping(eg0, bport), "ohttp": {}, "no_ra": true},
            {"mapping": mapping(eg1, bport), "no_ra": true},
        ],
        "metric": metric,
        "trace": trace,
    });
    (Tng::launch_named("four-entries", config), ports)
}

fn otlp_exports_every_series_and_one_trace_per_request(grpc: bool) {
    let receiver = if grpc {
        OtlpReceiver::grpc()
    } else {
        OtlpReceiver::http()
    };
    let (protocol, metrics_endpoint, traces_endpoint) = if grpc {
        (
            "grpc",
            receiver.base().to_owned(),
            receiver.base().to_owned(),
        )
    } else {
        (
            "http/protobuf",
            format!("{}/v1/metrics", receiver.base()),
            format!("{}/v1/traces", receiver.base()),
        )
    };
    let backend = Backend::start();
    // A step longer than the test: the export at shutdown must carry the final values.
    let (mut tng, [in0, in1, eg0, eg1]) = four_entries(
        &backend,
        json!({"exporters": [{"type": "oltp", "protocol": protocol,
            "endpoint": metrics_endpoint, "headers": {"x-api-key": "k1"}, "step": 3600}]}),
        json!({"exporters": [{"type": "oltp", "protocol": protocol,
            "endpoint": traces_endpoint, "headers": {"x-api-key": "k1"}}]}),
    );

    let r = curl_status(&[&format!("http://127.0.0.1:{in0}/echo"), "-d", "ohttp-body"]);
    assert_eq!((r.status, r.text().as_str()), (200, "ohttp-body"));
    let r = curl_status(&[
        &format!("http://127.0.0.1:{in1}/echo"),
        "-d",
        "rats-tls-body",
    ]);
    assert_eq!((r.status, r.text().as_str()), (200, "rats-tls-body"));
    let status = tng.proc.terminate();
    assert!(
        status.success(),
        "tng exit: {status:?}\n{}",
        tng.log_tail(30)
    );

    // Metrics: every series of the four entries, with upstream's attribute names.
    let last = receiver
        .metrics()
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no metrics export\n{}", tng.log_tail(30)));
    let scope_metrics: Vec<_> = last
        .resource_metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics.iter())
        .flat_map(|sm| sm.metrics.iter())
        .collect();
    let expected = [
        vec![
            ("ingress_id", "0".to_owned()),
            ("ingress_in", format!("127.0.0.1:{in0}")),
            ("ingress_out", format!("127.0.0.1:{eg0}")),
            ("ingress_type", "mapping".to_owned()),
        ],
        vec![
            ("ingress_id", "1".to_owned()),
            ("ingress_in", format!("127.0.0.1:{in1}")),
            ("ingress_out", format!("127.0.0.1:{eg1}")),
            ("ingress_type", "mapping".to_owned()),
        ],
        vec![
            ("egress_id", "0".to_owned()),
            ("egress_in", format!("127.0.0.1:{eg0}")),
            ("egress_out", format!("127.0.0.1:{}", backend.port())),
            ("egress_type", "mapping".to_owned()),
        ],
        vec![
            ("egress_id", "1".to_owned()),
            ("egress_in", format!("127.0.0.1:{eg1}")),
            ("egress_out", format!("127.0.0.1:{}", backend.port())),
            ("egress_type", "mapping".to_owned()),
        ],
    ];
    let expected: Vec<Vec<(String, String)>> = expected
        .iter()
        .map(|set| {
            set.iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        })
        .collect();
    for name in [
        "cx_total",
        "cx_active",
        "cx_failed",
        "tx_bytes_total",
        "rx_bytes_total",
    ] {
        let m = scope_metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {scope_metrics:?}"));
        let Some(metric::Data::Sum(sum)) = &m.data else {
            panic!("{name} is not a sum: {m:?}");
        };
        let mut values = vec![None; 4];
        for point in &sum.data_points {
            let set = string_attrs(&point.attributes);
            let i = expected
                .iter()
                .position(|e| *e == set)
                .unwrap_or_else(|| panic!("{name}: unexpected attributes {set:?}"));
            let Some(number_data_point::Value::AsInt(v)) = point.value else {
                panic!("{name}: not an integer: {point:?}");
            };
            assert!(values[i].replace(v).is_none(), "{name}: series {i} twice");
        }
        let values: Vec<i64> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.unwrap_or_else(|| panic!("{name}: series {i} missing")))
            .collect();
        match name {
            // One client connection per ingress; the egresses count their tunnelled streams.
            "cx_total" => assert_eq!(values, [1, 1, 1, 1], "{name}"),
            "cx_active" | "cx_failed" => assert_eq!(values, [0, 0, 0, 0], "{name}"),
            _ => assert!(values.iter().all(|v| *v > 0), "{name}: {values:?}"),
        }
    }

    // Traces: the OHTTP request is one trace, its egress span a child of the ingress's.
    let spans = receiver.spans();
    let requests: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "request" && s.attr("transport") == Some("ohttp"))
        .collect();
    let side = |direction: &str| {
        let found: Vec<_> = requests
            .iter()
            .filter(|s| s.attr("direction") == Some(direction))
            .collect();
        assert_eq!(found.len(), 1, "{direction} request spans: {spans:?}");
        *found[0]
    };
    let (ingress, egress) = (side("ingress"), side("egress"));
    // The egress's outer HTTP request is log context only, not a trace of its own.
    let outer: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "request" && s.attr("transport").is_none())
        .collect();
    assert!(outer.is_empty(), "outer request spans exported: {outer:?}");
    assert_eq!(
        egress.span.trace_id, ingress.span.trace_id,
        "one trace across both gateways"
    );
    assert_eq!(egress.span.parent_span_id, ingress.span.span_id);
    for s in [ingress, egress] {
        assert_eq!(attr(&s.resource, "service.name"), Some("tng"));
        assert_eq!(s.attr("id"), Some("0"));
        assert_eq!(s.attr("http.request.method"), Some("POST"));
        assert_eq!(s.attr("url.path"), Some("/echo"));
        assert_eq!(s.attr("http.response.status_code"), Some("200"));
        // The ingress's response is decrypted chunk by chunk; its end is the declared length.
        assert_eq!(s.attr("outcome"), Some("ok"), "{s:?}");
        assert_eq!(s.attr("bytes_rx"), Some("10"));
        assert_eq!(s.attr("bytes_tx"), Some("10"));
    }
    // The rats-TLS connection: one connection span per side, with what crossed it.
    for direction in ["ingress", "egress"] {
        let found: Vec<_> = spans
            .iter()
            .filter(|s| {
                s.span.name == "serve"
                    && s.attr("transport") == Some("rats_tls")
                    && s.attr("direction") == Some(direction)
            })
            .collect();
        assert_eq!(found.len(), 1, "{direction} rats-TLS spans: {spans:?}");
        let s = found[0];
        assert_eq!(s.attr("id"), Some("1"));
        assert_eq!(s.attr("outcome"), Some("ok"));
        for bytes in ["bytes_rx", "bytes_tx"] {
            let n: u64 = s.attr(bytes).and_then(|v| v.parse().ok()).unwrap_or(0);
            assert!(n > 0, "{direction} {bytes}: {s:?}");
        }
    }
    for r in receiver.requests() {
        assert_eq!(r.api_key, "k1", "{}: configured headers are sent", r.what);
    }
}

#[test]
fn otlp_grpc_receives_every_series_and_one_trace_across_both_gateways() {
    otlp_exports_every_series_and_one_trace_per_request(true);
}

#[test]
fn otlp_http_receives_every_series_and_one_trace_across_both_gateways() {
    otlp_exports_every_series_and_one_trace_per_request(false);
}

/// A rats-TLS connection gets exactly one access-log line on each side when it ends, and a
/// tunnel the ingress cannot open says why (upstream unreachable) in its line.
#[test]
fn each_rats_tls_connection_gets_one_access_log_line_per_side() {
    let backend = Backend::start();
    let (tng, [_, in1, _, eg1]) = four_entries(&backend, json!({}), json!({}));
    for _ in 0..3 {
        let r = curl_status(&[&format!("http://127.0.0.1:{in1}/echo"), "-d", "x"]);
        assert_eq!(r.status, 200);
    }
    let lines = |direction: &str| {
        tng.log()
            .lines()
            .filter(|l| {
                l.contains("tng::access_log:")
                    && l.contains(&format!(
                        r#"direction="{direction}" id="1" transport="rats_tls""#
                    ))
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut waited = 0;
    while (lines("ingress").len() < 3 || lines("egress").len() < 3) && waited < 50 {
        pause(Duration::from_millis(100));
        waited += 1;
    }
    for direction in ["ingress", "egress"] {
        let found = lines(direction);
        assert_eq!(found.len(), 3, "{direction}:\n{}", found.join("\n"));
        for line in &found {
            assert!(line.contains(" INFO "), "{line}");
            assert!(line.contains(r#"outcome="ok""#), "{line}");
            assert!(line.contains(": stream "), "{line}");
        }
    }
    let upstream = format!(r#"upstream="127.0.0.1:{eg1}""#);
    assert!(lines("ingress").iter().all(|l| l.contains(&upstream)));

    // The egress behind ingress 1 goes away: the next connection's line says so, once.
    drop(tng);
    let port = free_port();
    let lone = Tng::launch_named(
        "lone-ingress",
        json!({"add_ingress": [{"mapping": {"in": {"host": "127.0.0.1", "port": port},
            "out": {"host": "127.0.0.1", "port": free_port()}}, "no_ra": true}]}),
    );
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("curl");
    // The ingress closes the application's connection without a byte: an empty reply (52),
    // or a reset (56) when curl's request was still unread in the socket at the close.
    assert!(
        matches!(out.status.code(), Some(52 | 56)) && out.stdout.is_empty(),
        "curl: closed without a reply expected, got {:?} {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = lone.wait_for_log("tng::access_log:", Duration::from_secs(5));
    assert!(line.contains(r#"outcome="upstream_unreachable""#), "{line}");
    assert!(line.contains(" WARN "), "{line}");
    pause(Duration::from_millis(300));
    let count = lone.log().matches("tng::access_log:").count();
    assert_eq!(count, 1, "{}", lone.log_tail(20));
}

/// The `stdout` trace exporter prints each span as one OTLP/JSON line on the process's stdout
/// (not into the log pipeline), and what is still queued at shutdown is printed before exit.
#[test]
fn stdout_traces_print_one_json_span_per_line_and_flush_at_shutdown() {
    let backend = Backend::start();
    let (mut tng, [in0, ..]) = four_entries(
        &backend,
        json!({}),
        json!({"exporters": [{"type": "stdout"}]}),
    );
    let r = curl_status(&[&format!("http://127.0.0.1:{in0}/echo"), "-d", "x"]);
    assert_eq!(r.status, 200);
    assert!(tng.proc.terminate().success());
    let out = tng.proc.log();
    let spans: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let attr = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .map(|kv| kv["value"].clone())
    };
    let request = |direction: &str| {
        let found: Vec<&Value> = spans
            .iter()
            .filter(|s| {
                s["name"] == "request"
                    && attr(s, "direction") == Some(json!({"stringValue": direction}))
            })
            .collect();
        assert_eq!(found.len(), 1, "{direction}: {out}");
        found[0].clone()
    };
    let (ingress, egress) = (request("ingress"), request("egress"));
    assert_eq!(egress["traceId"], ingress["traceId"], "one trace: {out}");
    assert_eq!(egress["parentSpanId"], ingress["spanId"]);
    assert_eq!(ingress["kind"], 3, "client");
    assert_eq!(egress["kind"], 2, "server");
    assert_eq!(egress["flags"], 0x301, "sampled, remote parent");
    assert_eq!(
        attr(&egress, "http.response.status_code"),
        Some(json!({"intValue": "200"}))
    );
    assert_eq!(egress["status"]["code"], 1, "ok");
}
