//! The encoders against the official protobuf and JSON definitions, and the layer end to end
//! through a real `tracing` subscriber.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use prost::Message;

use super::encode::{json, protobuf, span_json, Origin};
use super::record::{parse_traceparent, SpanRecord, Value};

fn origin() -> Origin {
    Origin {
        resource: vec![
            ("service.name", "tng".to_owned()),
            ("service.version", "9.9.9".to_owned()),
        ],
        scope: "tng",
    }
}

fn sample() -> Vec<SpanRecord> {
    let mut root = SpanRecord::new("serve", None);
    let client = root.text("127.0.0.1:40000");
    root.set("client", client);
    root.set("zero", Value::Int(0));
    root.set("negative", Value::Int(-41));
    root.set("attested", Value::Bool(false));
    root.set("ratio", Value::Float(0.5));
    root.end_ns = root.start_ns + 1_000;
    let mut child = SpanRecord::new("request", Some(root.as_parent()));
    let kind = child.text("client");
    child.set("otel.kind", kind);
    let status = child.text("error");
    child.set("otel.status_code", status);
    child.set("http.response.status_code", Value::Int(502));
    // Long enough that its length prefix takes two bytes.
    let path = child.text(&"/p".repeat(100));
    child.set("url.path", path);
    child.end_ns = child.start_ns + 2_000;
    let mut remote = SpanRecord::new("request", None);
    let parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    remote.set_remote_parent(parent.expect("valid"));
    remote.end_ns = remote.start_ns;
    vec![root, child, remote]
}

fn check(decoded: &ExportTraceServiceRequest, records: &[SpanRecord]) {
    assert_eq!(decoded.resource_spans.len(), 1);
    let rs = &decoded.resource_spans[0];
    let resource = rs.resource.as_ref().expect("resource");
    let keys: Vec<_> = resource
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(keys, ["service.name", "service.version"]);
    let scope = &rs.scope_spans[0];
    assert_eq!(scope.scope.as_ref().expect("scope").name, "tng");
    assert_eq!(scope.spans.len(), records.len());
    let [root, child, remote] = &scope.spans[..] else {
        panic!("three spans: {:?}", scope.spans);
    };
    assert_eq!(root.trace_id, records[0].trace_id);
    assert_eq!(root.span_id, records[0].span_id);
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.name, "serve");
    assert_eq!(root.kind, SpanKind::Internal as i32);
    assert_eq!(root.end_time_unix_nano - root.start_time_unix_nano, 1_000);
    assert_eq!(root.flags, 0x101, "sampled, parent not remote");
    let values: Vec<_> = root
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.as_ref().and_then(|v| v.value.clone()),
            )
        })
        .collect();
    assert_eq!(
        values,
        [
            (
                "client",
                Some(any_value::Value::StringValue("127.0.0.1:40000".into()))
            ),
            ("zero", Some(any_value::Value::IntValue(0))),
            ("negative", Some(any_value::Value::IntValue(-41))),
            ("attested", Some(any_value::Value::BoolValue(false))),
            ("ratio", Some(any_value::Value::DoubleValue(0.5))),
        ]
    );
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(child.kind, SpanKind::Client as i32);
    assert_eq!(
        child.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let path = child.attributes.iter().find(|kv| kv.key == "url.path");
    assert_eq!(
        path.and_then(|kv| kv.value.clone()).and_then(|v| v.value),
        Some(any_value::Value::StringValue("/p".repeat(100)))
    );
    assert_eq!(
        super::record::hex(&remote.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        super::record::hex(&remote.parent_span_id),
        "00f067aa0ba902b7"
    );
    assert_eq!(remote.flags, 0x301, "sampled, parent remote");
}

#[test]
fn protobuf_decodes_with_the_official_definitions() {
    let records = sample();
    let bytes = protobuf(&origin(), &records);
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("valid protobuf");
    check(&decoded, &records);
}

#[test]
fn json_decodes_with_the_official_definitions() {
    let records = sample();
    let bytes = json(&origin(), &records);
    let decoded: ExportTraceServiceRequest =
        serde_json::from_slice(&bytes).expect("valid OTLP/JSON");
    check(&decoded, &records);
    let line = serde_json::to_string(&span_json(&records[1])).expect("json");
    assert!(line.contains(r#""kind":3"#), "{line}");
    assert!(line.contains(r#""intValue":"502""#), "{line}");
}

#[test]
fn the_layer_records_parents_fields_events_and_skips_other_targets() {
    use tracing_subscriber::layer::SubscriberExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let config = tng_config::TraceConfig {
        exporters: vec![tng_config::TraceExporter::Stdout],
    };
    let telemetry =
        crate::Telemetry::new(&Default::default(), &config, "9.9.9").expect("telemetry");
    let queue = telemetry
        .spans
        .as_ref()
        .map(|(_, q)| q.clone())
        .expect("queue");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!(target: "tng::tunnel", "serve", client = %"127.0.0.1:1");
        let _in_outer = outer.enter();
        // Not recorded: another crate's span, and the log-context target.
        let foreign = tracing::info_span!(target: "hyper", "foreign");
        let _in_foreign = foreign.enter();
        let context = tracing::info_span!(target: crate::LOG_CONTEXT_TARGET, "request");
        let _in_context = context.enter();
        let inner =
            tracing::info_span!(target: "tng::tunnel", "request", bytes_tx = tracing::field::Empty);
        inner.record("bytes_tx", 7_u64);
        inner.in_scope(
            || tracing::error!(target: "tng::tunnel", reason = "refused", "upstream failed"),
        );
        assert!(crate::inject(&inner).is_some());
        assert!(crate::inject(&foreign).is_none());
    });
    let spans = queue.take();
    let names: Vec<_> = spans.iter().map(|s| s.name).collect();
    assert_eq!(names, ["request", "serve"], "closed inner first");
    let (inner, outer) = (&spans[0], &spans[1]);
    assert_eq!(inner.parent.map(|p| p.span_id), Some(outer.span_id));
    assert_eq!(inner.trace_id, outer.trace_id);
    let attrs: Vec<_> = inner.attributes().collect();
    assert_eq!(attrs, [("bytes_tx", super::record::ValueRef::Int(7))]);
    assert_eq!(inner.status, super::record::Status::Error, "an ERROR event");
    assert_eq!(inner.events.len(), 1);
    assert_eq!(
        inner.resolve(inner.events[0].name),
        super::record::ValueRef::Text("upstream failed")
    );
    assert!(outer.end_ns >= outer.start_ns && outer.start_ns > 0);
}
