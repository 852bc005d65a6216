//! OTLP encodings of finished spans, written straight from the records: the protobuf
//! `ExportTraceServiceRequest` (gRPC and `http/protobuf`) and its OTLP/JSON form (`http/json`,
//! and one span per line for the `stdout` exporter). Field numbers are those of
//! `opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto`; the tests decode the
//! output with the official definitions.

use serde_json::{json, Map, Value as Json};

use super::record::{hex, Event, SpanRecord, ValueRef};

/// The resource and scope every batch is sent under.
pub(crate) struct Origin {
    /// `service.name` and `service.version`.
    pub(crate) resource: Vec<(&'static str, String)>,
    pub(crate) scope: &'static str,
}

/// A protobuf writer: each nested message is written in place and its length inserted in
/// front of it afterwards, so a batch is encoded in one buffer without sizing passes.
struct Pb(Vec<u8>);

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn bytes(&mut self, field: u32, value: &[u8]) {
        self.key(field, LEN);
        self.varint(value.len() as u64);
        self.0.extend_from_slice(value);
    }

    fn uint(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value);
        }
    }

    fn fixed64(&mut self, field: u32, value: u64) {
        self.key(field, FIXED64);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn fixed32(&mut self, field: u32, value: u32) {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn message(&mut self, field: u32, body: impl FnOnce(&mut Pb)) {
        self.key(field, LEN);
        let start = self.0.len();
        body(self);
        let end = self.0.len();
        // The length goes in front of the body it measures: append it, then rotate it into
        // place (one memmove of the body).
        self.varint((end - start) as u64);
        let prefix = self.0.len() - end;
        self.0[start..].rotate_right(prefix);
    }

    /// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue`'s oneof written even when zero.
    /// Both lengths are known up front, so nothing is moved.
    fn attribute(&mut self, field: u32, key: &str, value: ValueRef<'_>) {
        let any_len = 1 + match value {
            ValueRef::Text(s) => varint_len(s.len() as u64) + s.len(),
            ValueRef::Bool(_) => 1,
            ValueRef::Int(i) => varint_len(u64::from_ne_bytes(i.to_ne_bytes())),
            ValueRef::Float(_) => 8,
        };
        let kv_len =
            1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any_len as u64) + any_len;
        self.key(field, LEN);
        self.varint(kv_len as u64);
        self.bytes(1, key.as_bytes());
        self.key(2, LEN);
        self.varint(any_len as u64);
        match value {
            ValueRef::Text(s) => self.bytes(1, s.as_bytes()),
            ValueRef::Bool(b) => {
                self.key(2, VARINT);
                self.varint(u64::from(b));
            }
            ValueRef::Int(i) => {
                self.key(3, VARINT);
                self.varint(u64::from_ne_bytes(i.to_ne_bytes()));
            }
            ValueRef::Float(f) => {
                self.key(4, FIXED64);
                self.0.extend_from_slice(&f.to_le_bytes());
            }
        }
    }
}

fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// `Span.flags`: the W3C trace flags, and whether the parent is remote (bits 8 and 9).
fn flags(span: &SpanRecord) -> u32 {
    let sampled = u32::from(span.sampled);
    match span.parent {
        Some(p) if p.remote => sampled | 0x300,
        _ => sampled | 0x100,
    }
}

fn span_pb(pb: &mut Pb, span: &SpanRecord) {
    pb.message(2, |s| {
        s.bytes(1, &span.trace_id);
        s.bytes(2, &span.span_id);
        if let Some(parent) = span.parent {
            s.bytes(4, &parent.span_id);
        }
        s.bytes(5, span.name.as_bytes());
        s.uint(6, span.kind.otlp());
        s.fixed64(7, span.start_ns);
        s.fixed64(8, span.end_ns);
        for (key, value) in span.attributes() {
            s.attribute(9, key, value);
        }
        for event in &span.events {
            s.message(11, |e| {
                e.fixed64(1, event.time_ns);
                if let ValueRef::Text(name) = span.resolve(event.name) {
                    e.bytes(2, name.as_bytes());
                }
                for (key, value) in &event.attributes {
                    e.attribute(3, key, span.resolve(*value));
                }
            });
        }
        s.uint(12, u64::from(span.dropped_events));
        s.message(15, |st| st.uint(3, span.status.otlp()));
        s.fixed32(16, flags(span));
    });
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }` with one resource
/// and one scope.
pub(crate) fn protobuf(origin: &Origin, spans: &[SpanRecord]) -> Vec<u8> {
    let mut pb = Pb(Vec::with_capacity(64 + spans.len() * 400));
    pb.message(1, |rs| {
        rs.message(1, |resource| {
            for (key, value) in &origin.resource {
                resource.attribute(1, key, ValueRef::Text(value));
            }
        });
        rs.message(2, |ss| {
            ss.message(1, |scope| scope.bytes(1, origin.scope.as_bytes()));
            for span in spans {
                span_pb(ss, span);
            }
        });
    });
    pb.0
}

fn any_json(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Text(s) => json!({ "stringValue": s }),
        ValueRef::Bool(b) => json!({ "boolValue": b }),
        // OTLP/JSON carries 64-bit integers as strings.
        ValueRef::Int(i) => json!({ "intValue": i.to_string() }),
        ValueRef::Float(f) => json!({ "doubleValue": f }),
    }
}

fn attributes_json(attrs: &[(&str, ValueRef<'_>)]) -> Json {
    Json::Array(
        attrs
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": any_json(*value) }))
            .collect(),
    )
}

fn event_json(span: &SpanRecord, event: &Event) -> Json {
    let name = match span.resolve(event.name) {
        ValueRef::Text(name) => name,
        _ => "",
    };
    json!({
        "timeUnixNano": event.time_ns.to_string(),
        "name": name,
        "attributes": attributes_json(&event.attributes.iter().map(|(k, v)| (*k, span.resolve(*v))).collect::<Vec<_>>()),
    })
}

/// One span in OTLP/JSON: ids in lower hex, enums as numbers, 64-bit integers as strings.
pub(crate) fn span_json(span: &SpanRecord) -> Json {
    let mut out = Map::new();
    out.insert("traceId".into(), hex(&span.trace_id).into());
    out.insert("spanId".into(), hex(&span.span_id).into());
    if let Some(parent) = span.parent {
        out.insert("parentSpanId".into(), hex(&parent.span_id).into());
    }
    out.insert("flags".into(), flags(span).into());
    out.insert("name".into(), span.name.into());
    out.insert("kind".into(), span.kind.otlp().into());
    out.insert("startTimeUnixNano".into(), span.start_ns.to_string().into());
    out.insert("endTimeUnixNano".into(), span.end_ns.to_string().into());
    out.insert(
        "attributes".into(),
        attributes_json(&span.attributes().collect::<Vec<_>>()),
    );
    if !span.events.is_empty() {
        let events = span.events.iter().map(|e| event_json(span, e)).collect();
        out.insert("events".into(), Json::Array(events));
    }
    if span.dropped_events > 0 {
        out.insert("droppedEventsCount".into(), span.dropped_events.into());
    }
    out.insert("status".into(), json!({ "code": span.status.otlp() }));
    Json::Object(out)
}

/// The OTLP/JSON `ExportTraceServiceRequest`.
pub(crate) fn json(origin: &Origin, spans: &[SpanRecord]) -> Vec<u8> {
    let resource: Vec<_> = origin
        .resource
        .iter()
        .map(|(k, v)| (*k, ValueRef::Text(v.as_str())))
        .collect();
    let resource = attributes_json(&resource);
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": resource },
            "scopeSpans": [{
                "scope": { "name": origin.scope },
                "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
            }],
        }],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_the_writer() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut pb = Pb(Vec::new());
            pb.varint(v);
            assert_eq!(varint_len(v), pb.0.len(), "{v}");
        }
    }

    #[test]
    fn a_nested_length_lands_in_front_of_its_body() {
        let mut pb = Pb(vec![0xAA]);
        pb.message(1, |m| m.bytes(2, &[7; 200]));
        // tag 1/LEN, length 203 (two bytes), tag 2/LEN, length 200 (two bytes), body.
        assert_eq!(&pb.0[..7], &[0xAA, 0x0A, 0xCB, 0x01, 0x12, 0xC8, 0x01]);
        assert_eq!(pb.0.len(), 7 + 200);
    }
}
