//! An OTLP receiver built on the official protobuf definitions (`opentelemetry-proto`) gets
//! every series of two ingress and two egress entries, and the spans of one request that
//! crosses an `inject` → `set_parent_from` pair, over gRPC, HTTP/protobuf and HTTP/JSON.

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality};
use opentelemetry_proto::tonic::trace::v1::{status, Span};
use support::{drive, driven_value, four_attribute_sets, four_instances};
use tng_config::{
    MetricConfig, MetricExporter, OtlpExporter, OtlpProtocol, TraceConfig, TraceExporter,
};
use tng_e2e::otlp::{attr, hex_id, string_attrs, OtlpReceiver, ReceivedSpan};
use tng_telemetry::{
    inject, set_parent_from, AccessRecord, Endpoints, InstanceLabels, Outcome, Telemetry,
    Transport, TRACEPARENT,
};
use tracing_subscriber::layer::SubscriberExt;

fn check_metrics(last: &ExportMetricsServiceRequest) {
    assert_eq!(last.resource_metrics.len(), 1);
    let rm = &last.resource_metrics[0];
    let resource = string_attrs(&rm.resource.as_ref().expect("resource").attributes);
    assert_eq!(attr(&resource, "service.name"), Some("tng"));
    assert_eq!(attr(&resource, "service.version"), Some("9.9.9"));
    assert_eq!(rm.scope_metrics.len(), 1);
    let scope = &rm.scope_metrics[0];
    assert_eq!(scope.scope.as_ref().expect("scope").name, "tng");
    let mut names: Vec<&str> = scope.metrics.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cx_active",
            "cx_failed",
            "cx_total",
            "live",
            "rx_bytes_total",
            "tx_bytes_total"
        ]
    );
    let expected_sets = four_attribute_sets();
    for m in &scope.metrics {
        if m.name == "live" {
            let Some(metric::Data::Gauge(g)) = &m.data else {
                panic!("live is not a gauge: {m:?}");
            };
            assert_eq!(g.data_points.len(), 1);
            assert!(g.data_points[0].attributes.is_empty());
            assert_eq!(
                g.data_points[0].value,
                Some(number_data_point::Value::AsInt(1))
            );
            continue;
        }
        let Some(metric::Data::Sum(sum)) = &m.data else {
            panic!("{} is not a sum: {m:?}", m.name);
        };
        assert_eq!(sum.is_monotonic, m.name != "cx_active", "{}", m.name);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32,
            "{}",
            m.name
        );
        let unit = if m.name.ends_with("_bytes_total") {
            "bytes"
        } else {
            ""
        };
        assert_eq!(m.unit, unit, "{}", m.name);
        assert!(!m.description.is_empty(), "{}", m.name);
        assert_eq!(
            sum.data_points.len(),
            4,
            "{}: every series, {:?}",
            m.name,
            sum.data_points
        );
        let mut seen = Vec::new();
        for point in &sum.data_points {
            let set = string_attrs(&point.attributes);
            let i = expected_sets
                .iter()
                .position(|s| *s == set)
                .unwrap_or_else(|| panic!("{}: unexpected attributes {set:?}", m.name));
            assert_eq!(
                point.value,
                Some(number_data_point::Value::AsInt(driven_value(&m.name, i))),
                "{} of instance {i}",
                m.name
            );
            seen.push(i);
        }
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3], "{}", m.name);
    }
}

fn spans(receiver: &OtlpReceiver) -> Vec<(Vec<(String, String)>, Span)> {
    receiver
        .spans()
        .into_iter()
        .map(
            |ReceivedSpan {
                 resource,
                 scope,
                 attrs,
                 span,
             }| {
                assert_eq!(attr(&resource, "service.name"), Some("tng"));
                assert_eq!(scope, "tng");
                (attrs, span)
            },
        )
        .collect()
}

fn find<'a>(
    all: &'a [(Vec<(String, String)>, Span)],
    name: &str,
    direction: &str,
) -> &'a (Vec<(String, String)>, Span) {
    let found: Vec<_> = all
        .iter()
        .filter(|(a, s)| s.name == name && attr(a, "direction") == Some(direction))
        .collect();
    assert_eq!(found.len(), 1, "{direction} {name}: {all:?}");
    found[0]
}

fn record(status: u16) -> AccessRecord<'static> {
    AccessRecord {
        method: Some("GET"),
        path: Some("/v1/chat?token=secret"),
        status: Some(status),
        bytes_in: 89,
        bytes_out: 210,
        duration: Duration::from_millis(3),
        upstream: "127.0.0.1:30080",
        outcome: Outcome::Ok,
        attested: true,
    }
}

async fn run(protocol: OtlpProtocol) {
    let receiver = match protocol {
        OtlpProtocol::Grpc => OtlpReceiver::grpc(),
        _ => OtlpReceiver::http(),
    };
    let (metrics_endpoint, traces_endpoint) = match protocol {
        OtlpProtocol::Grpc => (receiver.base().to_owned(), receiver.base().to_owned()),
        _ => (
            format!("{}/custom/metrics", receiver.base()),
            format!("{}/custom/traces", receiver.base()),
        ),
    };
    let headers = vec![("x-api-key".to_owned(), "k4".to_owned())];
    let otlp = |endpoint: &str| OtlpExporter {
        protocol,
        endpoint: endpoint.to_owned(),
        headers: headers.clone(),
    };

    // Metrics: one process with four entries; a long step, so the shutdown export is the one
    // that must carry the final values.
    let metric = MetricConfig {
        exporters: vec![MetricExporter::Otlp {
            exporter: otlp(&metrics_endpoint),
            step: 3600,
        }],
    };
    let telemetry = Telemetry::new(&metric, &TraceConfig::default(), "9.9.9").expect("telemetry");
    let instances = four_instances(&telemetry);
    let open = drive(&instances);
    telemetry.set_live(true);
    telemetry.shutdown().await;
    drop(open);
    let last = receiver
        .metrics()
        .last()
        .cloned()
        .expect("no metrics export");
    check_metrics(&last);

    // Traces: an ingress process and an egress process, one request crossing them.
    let trace = TraceConfig {
        exporters: vec![TraceExporter::Otlp(otlp(&traces_endpoint))],
    };
    let none = MetricConfig::default();
    let ingress_side = Telemetry::new(&none, &trace, "9.9.9").expect("ingress telemetry");
    let egress_side = Telemetry::new(&none, &trace, "9.9.9").expect("egress telemetry");
    let labels = |mode: &str| InstanceLabels {
        mode: mode.into(),
        transport: Transport::Ohttp,
        endpoints: Endpoints::InOut {
            listen: "127.0.0.1:30000".into(),
            upstream: "127.0.0.1:30001".into(),
        },
    };
    let ingress = ingress_side.ingress(0, labels("mapping"));
    let egress = egress_side.egress(3, labels("netfilter"));

    let subscriber = tracing_subscriber::registry().with(ingress_side.layer());
    let traceparent = tracing::subscriber::with_default(subscriber, || {
        let serve = ingress.connection_span(&"127.0.0.1:40000");
        let traceparent = {
            let _in_serve = serve.enter();
            let request = ingress.request_span("GET", "/v1/chat?token=secret");
            let value = inject(&request).expect("a recorded span injects a traceparent");
            record(200).emit(&ingress, &request);
            value
        };
        record(200).emit(&ingress, &serve);
        traceparent
    });
    let subscriber = tracing_subscriber::registry().with(egress_side.layer());
    tracing::subscriber::with_default(subscriber, || {
        let mut inner_headers = http::HeaderMap::new();
        inner_headers.insert(TRACEPARENT, traceparent.clone());
        let request = egress.request_span("GET", "/v1/chat");
        assert!(set_parent_from(&request, &inner_headers));
        let _entered = request.enter();
        record(502).emit(&egress, &request);
    });
    ingress_side.shutdown().await;
    egress_side.shutdown().await;

    let all = spans(&receiver);
    let (in_serve_attrs, in_serve) = find(&all, "serve", "ingress");
    let (in_req_attrs, in_req) = find(&all, "request", "ingress");
    let (eg_req_attrs, eg_req) = find(&all, "request", "egress");
    assert_eq!(in_req.trace_id, in_serve.trace_id);
    assert_eq!(in_req.parent_span_id, in_serve.span_id);
    assert_eq!(
        eg_req.trace_id, in_req.trace_id,
        "one trace across both gateways"
    );
    assert_eq!(eg_req.parent_span_id, in_req.span_id);
    let tp = traceparent.to_str().unwrap();
    assert_eq!(
        tp,
        format!(
            "00-{}-{}-01",
            hex_id(&in_req.trace_id),
            hex_id(&in_req.span_id)
        )
    );
    assert!(
        in_serve.parent_span_id.is_empty(),
        "one trace per connection, not per process"
    );
    for (attrs, want_id, status) in [(in_req_attrs, "0", "200"), (eg_req_attrs, "3", "502")] {
        assert_eq!(attr(attrs, "id"), Some(want_id));
        assert_eq!(attr(attrs, "transport"), Some("ohttp"));
        assert_eq!(attr(attrs, "http.request.method"), Some("GET"));
        assert_eq!(attr(attrs, "url.path"), Some("/v1/chat"));
        assert_eq!(attr(attrs, "http.response.status_code"), Some(status));
        assert_eq!(attr(attrs, "bytes_tx"), Some("210"));
        assert_eq!(attr(attrs, "bytes_rx"), Some("89"));
        assert_eq!(attr(attrs, "outcome"), Some("ok"));
        assert_eq!(attr(attrs, "attested"), Some("true"));
    }
    assert_eq!(attr(in_serve_attrs, "client"), Some("127.0.0.1:40000"));
    let code = |s: &Span| s.status.as_ref().map_or(0, |st| st.code);
    assert_eq!(code(in_req), status::StatusCode::Ok as i32);
    assert_eq!(
        code(eg_req),
        status::StatusCode::Error as i32,
        "a 502 is an error span"
    );
    for (_, span) in &all {
        assert!(
            !format!("{span:?}").contains("secret"),
            "the query string leaked into a span: {span:?}"
        );
    }

    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let (what, encoding, key) = (&r.what, &r.encoding, &r.api_key);
        assert_eq!(key, "k4", "{what}: configured headers are sent");
        let want = match protocol {
            OtlpProtocol::Grpc => "gzip",
            OtlpProtocol::HttpProtobuf => "application/x-protobuf",
            OtlpProtocol::HttpJson => "application/json",
        };
        assert_eq!(encoding, want, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_metrics_and_traces() {
    run(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_metrics_and_traces() {
    run(OtlpProtocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_json_metrics_and_traces() {
    run(OtlpProtocol::HttpJson).await;
}
