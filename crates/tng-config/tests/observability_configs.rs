//! `metric` and `trace`: upstream 2.12.0's configurations accepted verbatim (each one below was
//! also started by the upstream binary), and every reject rule pinned to its exact message.

use tng_config::{
    FalconExporter, MetricConfig, MetricExporter, OtlpExporter, OtlpProtocol, TraceConfig,
    TraceExporter,
};

/// The ingress/egress pair of the observability spec's test setup, with `extra` top-level keys.
fn with(extra: &str) -> String {
    format!(
        r#"{{
  "add_ingress": [{{"mapping": {{"in": {{"host": "127.0.0.1", "port": 30000}},
                                "out": {{"host": "127.0.0.1", "port": 30001}}}},
                   "ohttp": {{}}, "no_ra": true}}],
  "control_interface": {{"restful": {{"host": "127.0.0.1", "port": 30090}}}},
  {extra}
}}"#
    )
}

fn parse(json: &str) -> tng_config::Config {
    match tng_config::parse(json) {
        Ok(config) => config,
        Err(e) => panic!("rejected: {e}\n{json}"),
    }
}

fn otlp(protocol: OtlpProtocol, endpoint: &str, headers: &[(&str, &str)]) -> OtlpExporter {
    OtlpExporter {
        protocol,
        endpoint: endpoint.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[test]
fn absent_and_empty_blocks_export_nothing() {
    for json in [
        with(r#""add_egress": []"#),
        with(r#""metric": null, "trace": null"#),
        with(r#""metric": {}, "trace": {}"#),
        with(r#""metric": {"exporters": []}, "trace": {"exporters": []}"#),
    ] {
        let config = parse(&json);
        assert_eq!(config.metric, MetricConfig::default(), "{json}");
        assert_eq!(config.trace, TraceConfig::default(), "{json}");
        assert!(config.warnings.iter().all(|w| !w.contains("metric")));
    }
}

#[test]
fn stdout_metrics_with_and_without_step() {
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "stdout", "step": 3}]}"#,
    ));
    assert_eq!(
        config.metric.exporters,
        [MetricExporter::Stdout { step: 3 }]
    );
    let config = parse(&with(r#""metric": {"exporters": [{"type": "stdout"}]}"#));
    assert_eq!(
        config.metric.exporters,
        [MetricExporter::Stdout { step: 60 }]
    );
    assert_eq!(config.metric.exporters[0].step(), 60);
    // Accepted as upstream: the OpenTelemetry default interval applies.
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "stdout", "step": 0}]}"#,
    ));
    assert_eq!(config.metric.exporters[0].step(), 0);
}

#[test]
fn falcon_keeps_tag_order_and_defaults() {
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "falcon", "server_url": "http://127.0.0.1:34318",
            "endpoint": "test-node", "tags": {"namespace": "ns1", "app": "tng"}, "step": 3}]}"#,
    ));
    assert_eq!(
        config.metric.exporters,
        [MetricExporter::Falcon(FalconExporter {
            server_url: "http://127.0.0.1:34318".into(),
            endpoint: "test-node".into(),
            tags: vec![
                ("namespace".into(), "ns1".into()),
                ("app".into(), "tng".into())
            ],
            step: 3,
        })]
    );
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "falcon", "server_url": "http://127.0.0.1:1988/",
            "endpoint": "node-1"}]}"#,
    ));
    let MetricExporter::Falcon(falcon) = &config.metric.exporters[0] else {
        panic!("not falcon: {:?}", config.metric.exporters);
    };
    assert_eq!((falcon.tags.len(), falcon.step), (0, 60));
    assert_eq!(falcon.server_url, "http://127.0.0.1:1988/");
}

#[test]
fn otlp_metrics_every_protocol_and_both_spellings() {
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "oltp", "protocol": "grpc",
            "endpoint": "http://127.0.0.1:34317", "headers": {"x-api-key": "k4"}, "step": 2}]}"#,
    ));
    assert_eq!(
        config.metric.exporters,
        [MetricExporter::Otlp {
            exporter: otlp(
                OtlpProtocol::Grpc,
                "http://127.0.0.1:34317",
                &[("x-api-key", "k4")]
            ),
            step: 2,
        }]
    );
    for (protocol, wanted) in [
        ("http/protobuf", OtlpProtocol::HttpProtobuf),
        ("http/json", OtlpProtocol::HttpJson),
    ] {
        for spelling in ["oltp", "otlp"] {
            let config = parse(&with(&format!(
                r#""metric": {{"exporters": [{{"type": "{spelling}", "protocol": "{protocol}",
                    "endpoint": "http://127.0.0.1:34318/v1/metrics", "step": 2}}]}}"#
            )));
            assert_eq!(
                config.metric.exporters,
                [MetricExporter::Otlp {
                    exporter: otlp(wanted, "http://127.0.0.1:34318/v1/metrics", &[]),
                    step: 2,
                }]
            );
        }
    }
    // Upstream's gRPC stack folds metadata names; so do we.
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "oltp", "protocol": "grpc",
            "endpoint": "https://collector.example:4317", "headers": {"X-Api-Key": "k4"}, "step": 2}]}"#,
    ));
    let MetricExporter::Otlp { exporter, .. } = &config.metric.exporters[0] else {
        panic!("not otlp");
    };
    assert_eq!(
        exporter.headers,
        [("x-api-key".to_owned(), "k4".to_owned())]
    );
}

#[test]
fn traces_otlp_and_stdout_several_exporters_fan_out() {
    let config = parse(&with(
        r#""trace": {"exporters": [
            {"type": "oltp", "protocol": "http/protobuf", "endpoint": "http://127.0.0.1:34318/custom/traces"},
            {"type": "oltp", "protocol": "grpc", "endpoint": "http://127.0.0.1:34317", "headers": {"x-api-key": "k1"}},
            {"type": "otlp", "protocol": "http/json", "endpoint": "http://127.0.0.1:34318"},
            {"type": "stdout"}]}"#,
    ));
    assert_eq!(
        config.trace.exporters,
        [
            TraceExporter::Otlp(otlp(
                OtlpProtocol::HttpProtobuf,
                "http://127.0.0.1:34318/custom/traces",
                &[]
            )),
            TraceExporter::Otlp(otlp(
                OtlpProtocol::Grpc,
                "http://127.0.0.1:34317",
                &[("x-api-key", "k1")]
            )),
            TraceExporter::Otlp(otlp(OtlpProtocol::HttpJson, "http://127.0.0.1:34318", &[])),
            TraceExporter::Stdout,
        ]
    );
    assert!(config.warnings.iter().all(|w| !w.starts_with("trace")));
}

#[test]
fn metric_and_trace_together() {
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "stdout", "step": 3}]},
           "trace": {"exporters": [{"type": "stdout"}]}"#,
    ));
    assert_eq!(
        config.metric.exporters,
        [MetricExporter::Stdout { step: 3 }]
    );
    assert_eq!(config.trace.exporters, [TraceExporter::Stdout]);
}

/// Upstream ignores unknown keys inside exporters; a key another exporter type reads is
/// therefore accepted, with a warning naming it.
#[test]
fn keys_of_other_exporter_types_are_ignored_with_a_warning() {
    let config = parse(&with(
        r#""metric": {"exporters": [{"type": "stdout", "step": 3, "endpoint": "x"}]},
           "trace": {"exporters": [{"type": "stdout", "step": 3}]}"#,
    ));
    assert_eq!(
        config.metric.exporters,
        [MetricExporter::Stdout { step: 3 }]
    );
    assert_eq!(config.trace.exporters, [TraceExporter::Stdout]);
    let ours: Vec<&String> = config
        .warnings
        .iter()
        .filter(|w| w.starts_with("metric") || w.starts_with("trace"))
        .collect();
    assert_eq!(
        ours,
        [
            "metric.exporters[0].endpoint: not read by the `stdout` exporter; ignored",
            "trace.exporters[0].step: not read by the `stdout` exporter; ignored",
        ]
    );
}

fn bad_table() -> Vec<(String, &'static str)> {
    let metric = |e: &str| with(&format!(r#""metric": {{"exporters": [{e}]}}"#));
    let trace = |e: &str| with(&format!(r#""trace": {{"exporters": [{e}]}}"#));
    let grpc = r#""protocol": "grpc", "endpoint": "http://127.0.0.1:4317""#;
    vec![
        (with(r#""metrics": {}"#), "unknown field `metrics`, expected one of `add_ingress`, `add_egress`, `control_interface`, `metric`, `trace`, `admin_bind`"),
        (with(r#""metric": []"#), "metric: invalid type: array, expected an object"),
        (with(r#""metric": {"exporter": []}"#), "metric: unknown field `exporter`, expected `exporters`"),
        (with(r#""metric": {"exporters": null}"#), "metric.exporters: invalid type: null, expected an array"),
        (with(r#""metric": {"exporters": {"type": "stdout"}}"#), "metric.exporters: invalid type: object, expected an array"),
        (metric(r#"{"type": "stdout", "step": 3}, {"type": "stdout", "step": 3}"#), "metric.exporters[1]: only one metric exporter is supported (as upstream)"),
        (metric(r#"{"step": 3}"#), "metric.exporters[0].type: required"),
        (metric(r#"{"type": "foo"}"#), "metric.exporters[0].type: unknown variant `foo`, expected one of `stdout`, `falcon`, `oltp`, `otlp`"),
        (metric(r#"{"type": 1}"#), "metric.exporters[0].type: invalid type: integer `1`, expected a string"),
        (metric(r#"{"type": "stdout", "step": "x"}"#), "metric.exporters[0].step: invalid type: string \"x\", expected a non-negative integer"),
        (metric(r#"{"type": "stdout", "step": -1}"#), "metric.exporters[0].step: invalid value: -1, expected a non-negative integer"),
        (metric(r#"{"type": "stdout", "stpe": 3}"#), "metric.exporters[0]: unknown field `stpe`, expected one of `type`, `step`"),
        // falcon
        (metric(r#"{"type": "falcon", "endpoint": "n"}"#), "metric.exporters[0].server_url: required"),
        (metric(r#"{"type": "falcon", "server_url": "http://127.0.0.1:1988"}"#), "metric.exporters[0].endpoint: required"),
        (metric(r#"{"type": "falcon", "server_url": "http://127.0.0.1:1988", "endpoint": "n", "tags": {"a": 1}}"#), "metric.exporters[0].tags.a: invalid type: integer `1`, expected a string"),
        (metric(r#"{"type": "falcon", "server_url": "http://127.0.0.1:1988", "endpoint": "n", "tags": ["a"]}"#), "metric.exporters[0].tags: invalid type: array, expected an object"),
        (metric(r#"{"type": "falcon", "server_url": "127.0.0.1:1988", "endpoint": "n"}"#), "metric.exporters[0].server_url: invalid URL \"127.0.0.1:1988\": expected an absolute http:// URL with a host"),
        (metric(r#"{"type": "falcon", "server_url": "https://falcon.example", "endpoint": "n"}"#), "metric.exporters[0].server_url: an https:// Falcon agent is not supported by this implementation (use its http:// address)"),
        (metric(r#"{"type": "falcon", "server_url": "http://127.0.0.1:1988", "endpoint": "n", "header": {}}"#), "metric.exporters[0]: unknown field `header`, expected one of `type`, `server_url`, `endpoint`, `tags`, `step`"),
        // oltp
        (metric(r#"{"type": "oltp", "protocol": "grpc", "endpoint": "http://127.0.0.1:4317"}"#), "metric.exporters[0].step: required"),
        (metric(r#"{"type": "oltp", "endpoint": "http://127.0.0.1:4317", "step": 1}"#), "metric.exporters[0].protocol: required"),
        (metric(r#"{"type": "otlp", "protocol": "http", "endpoint": "http://127.0.0.1:4317", "step": 1}"#), "metric.exporters[0].protocol: unknown variant `http`, expected one of `http/protobuf`, `http/json`, `grpc`"),
        (metric(r#"{"type": "oltp", "protocol": "grpc", "step": 1}"#), "metric.exporters[0].endpoint: required"),
        (metric(r#"{"type": "oltp", "protocol": "grpc", "endpoint": "http://a b", "step": 1}"#), "metric.exporters[0].endpoint: invalid URL \"http://a b\": invalid uri character"),
        (metric(r#"{"type": "oltp", "protocol": "http/json", "endpoint": "127.0.0.1:4318", "step": 1}"#), "metric.exporters[0].endpoint: invalid URL \"127.0.0.1:4318\": expected an absolute http:// or https:// URL with a host"),
        (metric(r#"{"type": "oltp", "protocol": "grpc", "endpoint": "ftp://x", "step": 1}"#), "metric.exporters[0].endpoint: invalid URL \"ftp://x\": expected an absolute http:// or https:// URL with a host"),
        (metric(&format!(r#"{{"type": "oltp", {grpc}, "step": 1, "headers": {{"x y": "v"}}}}"#)), "metric.exporters[0].headers.x y: invalid HTTP header name"),
        (metric(&format!(r#"{{"type": "oltp", {grpc}, "step": 1, "headers": {{"k": "a\nb"}}}}"#)), "metric.exporters[0].headers.k: invalid HTTP header value"),
        (metric(&format!(r#"{{"type": "oltp", {grpc}, "step": 1, "headers": {{"k": 2}}}}"#)), "metric.exporters[0].headers.k: invalid type: integer `2`, expected a string"),
        (metric(&format!(r#"{{"type": "oltp", {grpc}, "step": 1, "timeout": 5}}"#)), "metric.exporters[0]: unknown field `timeout`, expected one of `type`, `protocol`, `endpoint`, `headers`, `step`"),
        // trace
        (with(r#""trace": {"exporters": [], "sampler": "always"}"#), "trace: unknown field `sampler`, expected `exporters`"),
        (trace(r#"{"type": "falcon"}"#), "trace.exporters[0].type: unknown variant `falcon`, expected one of `stdout`, `oltp`, `otlp`"),
        (trace(&format!(r#"{{"type": "oltp", {grpc}, "step": 3}}"#)), "trace.exporters[0]: unknown field `step`, expected one of `type`, `protocol`, `endpoint`, `headers`"),
        (trace(r#"{"type": "oltp", "protocol": "grpc"}"#), "trace.exporters[0].endpoint: required"),
        (trace(r#"{"type": "stdout", "colour": true}"#), "trace.exporters[0]: unknown field `colour`, expected `type`"),
    ]
}

#[test]
fn bad_metric_and_trace_configs_name_the_field() {
    let mut failures = Vec::new();
    for (json, expected) in bad_table() {
        match tng_config::parse(&json) {
            Ok(_) => failures.push(format!("accepted: {json}\n  wanted: {expected}")),
            Err(e) if e.to_string() == expected => {}
            Err(e) => failures.push(format!(
                "config: {json}\n  wanted: {expected}\n  got:    {e}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
