//! One span as the exporter needs it: ids, times, kind, status and attributes, kept in one
//! record per span with its string values in one buffer, so opening and closing a span costs a
//! few allocations instead of the SDK's per-attribute objects.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) type TraceId = [u8; 16];
pub(crate) type SpanId = [u8; 8];

/// Events kept per span; later ones are counted as dropped.
const MAX_EVENTS: usize = 32;

/// OTLP's `SpanKind`, set through the `otel.kind` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    fn parse(value: &str) -> Option<Kind> {
        let kinds = [
            ("internal", Kind::Internal),
            ("server", Kind::Server),
            ("client", Kind::Client),
            ("producer", Kind::Producer),
            ("consumer", Kind::Consumer),
        ];
        kinds
            .into_iter()
            .find(|(name, _)| value.eq_ignore_ascii_case(name))
            .map(|(_, kind)| kind)
    }

    /// The OTLP enum value.
    pub(crate) fn otlp(self) -> u64 {
        match self {
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
            Kind::Producer => 4,
            Kind::Consumer => 5,
        }
    }
}

/// OTLP's status code, set through the `otel.status_code` field or by an ERROR event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Unset,
    Ok,
    Error,
}

impl Status {
    fn parse(value: &str) -> Option<Status> {
        [
            ("unset", Status::Unset),
            ("ok", Status::Ok),
            ("error", Status::Error),
        ]
        .into_iter()
        .find(|(name, _)| value.eq_ignore_ascii_case(name))
        .map(|(_, status)| status)
    }

    pub(crate) fn otlp(self) -> u64 {
        match self {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error => 2,
        }
    }
}

/// An attribute value; text lives in the owning record's buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Text { start: u32, end: u32 },
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A value resolved against its record's text buffer, for the encoders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Text(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

pub(crate) type Attributes = Vec<(&'static str, Value)>;

/// A `tracing` event recorded inside a span.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) time_ns: u64,
    pub(crate) name: Value,
    pub(crate) attributes: Attributes,
}

/// The trace context a span was created under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parent {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) sampled: bool,
    /// The parent lives in another process (it came in a `traceparent`).
    pub(crate) remote: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct SpanRecord {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: Option<Parent>,
    pub(crate) sampled: bool,
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) status: Status,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    pub(crate) attributes: Attributes,
    pub(crate) events: Vec<Event>,
    pub(crate) dropped_events: u32,
    text: String,
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn random_trace_id() -> TraceId {
    loop {
        let id: TraceId = rand::random();
        if id != [0; 16] {
            return id;
        }
    }
}

fn random_span_id() -> SpanId {
    loop {
        let id: SpanId = rand::random();
        if id != [0; 8] {
            return id;
        }
    }
}

impl SpanRecord {
    /// A new span under `parent`, or the root of a new trace. Sampling follows the parent, as
    /// the SDK's default parent-based sampler did: a caller that said "not sampled" is obeyed.
    pub(crate) fn new(name: &'static str, parent: Option<Parent>) -> SpanRecord {
        SpanRecord {
            trace_id: parent.map_or_else(random_trace_id, |p| p.trace_id),
            span_id: random_span_id(),
            parent,
            sampled: parent.is_none_or(|p| p.sampled),
            name,
            kind: Kind::Internal,
            status: Status::Unset,
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::with_capacity(16),
            events: Vec::new(),
            dropped_events: 0,
            text: String::with_capacity(128),
        }
    }

    /// This span as the parent of a child (in this process, or in the next one).
    pub(crate) fn as_parent(&self) -> Parent {
        Parent {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: self.sampled,
            remote: false,
        }
    }

    /// Moves the span under a parent from another process. Only meaningful before any child
    /// span was opened, since children copied the old trace id.
    pub(crate) fn set_remote_parent(&mut self, parent: Parent) {
        self.trace_id = parent.trace_id;
        self.sampled = parent.sampled;
        self.parent = Some(Parent {
            remote: true,
            ..parent
        });
    }

    pub(crate) fn resolve(&self, value: Value) -> ValueRef<'_> {
        match value {
            Value::Text { start, end } => ValueRef::Text(
                self.text
                    .get(start as usize..end as usize)
                    .unwrap_or_default(),
            ),
            Value::Int(v) => ValueRef::Int(v),
            Value::Float(v) => ValueRef::Float(v),
            Value::Bool(v) => ValueRef::Bool(v),
        }
    }

    pub(crate) fn text(&mut self, s: &str) -> Value {
        let start = self.text.len();
        self.text.push_str(s);
        self.text_from(start)
    }

    pub(crate) fn display(&mut self, value: &dyn fmt::Debug) -> Value {
        use fmt::Write as _;
        let start = self.text.len();
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{value:?}");
        self.text_from(start)
    }

    fn text_from(&self, start: usize) -> Value {
        let pos = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Value::Text {
            start: pos(start),
            end: pos(self.text.len()),
        }
    }

    /// Sets a span field; `otel.kind` and `otel.status_code` set the kind and status as
    /// tracing-opentelemetry's conventions have it, everything else is an attribute (a field
    /// recorded again replaces its earlier value).
    pub(crate) fn set(&mut self, key: &'static str, value: Value) {
        if let Some(special) = key.strip_prefix("otel.") {
            if let ValueRef::Text(text) = self.resolve(value) {
                match special {
                    "kind" => self.kind = Kind::parse(text).unwrap_or(self.kind),
                    "status_code" => self.status = Status::parse(text).unwrap_or(self.status),
                    _ => {}
                }
            }
            return;
        }
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    /// An unsigned count; beyond `i64::MAX` (never, for bytes) it is kept as text.
    pub(crate) fn set_int(&mut self, key: &'static str, value: u64) {
        let value = match i64::try_from(value) {
            Ok(v) => Value::Int(v),
            Err(_) => self.display(&value),
        };
        self.set(key, value);
    }

    pub(crate) fn push_event(&mut self, event: Event, error: bool) {
        if error && self.status == Status::Unset {
            self.status = Status::Error;
        }
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
    }

    /// The attributes with their values resolved.
    pub(crate) fn attributes(&self) -> impl Iterator<Item = (&'static str, ValueRef<'_>)> {
        self.attributes.iter().map(|(k, v)| (*k, self.resolve(*v)))
    }
}

/// W3C Trace Context (`traceparent`): `00-<trace id>-<parent id>-<flags>` in lower hex.
pub(crate) fn format_traceparent(parent: &Parent) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    hex_into(&mut out, &parent.trace_id);
    out.push('-');
    hex_into(&mut out, &parent.span_id);
    out.push_str(if parent.sampled { "-01" } else { "-00" });
    out
}

/// Parses a `traceparent` value; `None` for anything malformed, the all-zero ids, or version
/// `ff`. Later versions are read by their version-00 prefix, as the recommendation says.
pub(crate) fn parse_traceparent(value: &str) -> Option<Parent> {
    let bytes = value.as_bytes();
    let version = unhex::<1>(bytes.get(0..2)?)?[0];
    let exact = bytes.len() == 55;
    let longer = version != 0 && bytes.len() > 55 && bytes[55] == b'-';
    if version == 0xff || !(exact || longer) {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = unhex::<16>(&bytes[3..35])?;
    let span_id = unhex::<8>(&bytes[36..52])?;
    let flags = unhex::<1>(&bytes[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
        remote: true,
    })
}

pub(crate) fn hex_into(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    hex_into(&mut out, bytes);
    out
}

/// Lower-case hex only: W3C Trace Context forbids upper case.
fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let parent = parse_traceparent(VALID).expect("valid");
        assert_eq!(hex(&parent.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&parent.span_id), "00f067aa0ba902b7");
        assert!(parent.sampled && parent.remote);
        assert_eq!(format_traceparent(&parent), VALID);
        let unsampled = parse_traceparent(&VALID.replace("-01", "-00")).expect("valid");
        assert!(!unsampled.sampled);
        assert!(format_traceparent(&unsampled).ends_with("-00"));
    }

    #[test]
    fn traceparent_refuses_what_the_recommendation_refuses() {
        for bad in [
            "",
            "00-zz-yy-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        // A later version is read by its version-00 prefix.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(parse_traceparent(later).is_some());
    }

    #[test]
    fn fields_set_kind_status_and_replace_attributes() {
        let mut record = SpanRecord::new("request", None);
        assert!(record.sampled && record.parent.is_none());
        let kind = record.text("server");
        record.set("otel.kind", kind);
        let status = record.text("error");
        record.set("otel.status_code", status);
        let first = record.text("first");
        record.set("outcome", first);
        record.set("bytes_tx", Value::Int(10));
        let second = record.text("second");
        record.set("outcome", second);
        assert_eq!(record.kind, Kind::Server);
        assert_eq!(record.status, Status::Error);
        let attrs: Vec<_> = record.attributes().collect();
        assert_eq!(
            attrs,
            [
                ("outcome", ValueRef::Text("second")),
                ("bytes_tx", ValueRef::Int(10))
            ]
        );
    }

    #[test]
    fn children_inherit_the_trace_and_a_remote_parent_moves_it() {
        let root = SpanRecord::new("serve", None);
        let child = SpanRecord::new("request", Some(root.as_parent()));
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent.map(|p| p.span_id), Some(root.span_id));
        assert_ne!(child.span_id, root.span_id);
        let mut moved = SpanRecord::new("request", None);
        let remote = parse_traceparent(&VALID.replace("-01", "-00")).expect("valid");
        moved.set_remote_parent(remote);
        assert_eq!(moved.trace_id, remote.trace_id);
        assert!(!moved.sampled, "an unsampled caller is obeyed");
        assert!(moved.parent.is_some_and(|p| p.remote));
    }
}
