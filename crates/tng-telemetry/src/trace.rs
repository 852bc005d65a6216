//! Spans per connection and per request, exported by `crate::spans`, and W3C trace context carried
//! from the ingress to the egress inside the encrypted request.

use http::{HeaderMap, HeaderValue};
use tracing::field::Empty;
use tracing::Span;

use crate::instance::InstanceMetrics;
use crate::spans::{format_traceparent, parse_traceparent, with_record, Parent};

/// The header carrying the trace context (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// Targets whose spans and events the OpenTelemetry layer records: the gateway's own crates
/// (`tng`, `tng_*`), never the HTTP/gRPC stacks, whose spans would also cover the exporter's
/// own requests.
pub(crate) const TRACED_TARGET_PREFIX: &str = "tng";

/// Spans under this target give log lines their context and are never exported as traces:
/// the egress's outer HTTP request, whose sealed inner request already has the span an
/// operator traces (as its own root it would start a one-span trace per request).
pub const LOG_CONTEXT_TARGET: &str = "tng::log_context";

impl InstanceMetrics {
    /// The span of one counted connection (`serve`, as upstream), to instrument its task with.
    /// [`crate::AccessRecord::emit`] fills in `bytes_*`, `outcome` and the status.
    pub fn connection_span(&self, client: &dyn std::fmt::Display) -> Span {
        let c = &self.cells;
        tracing::info_span!(
            target: "tng::tunnel",
            "serve",
            otel.kind = "server",
            otel.status_code = Empty,
            direction = c.direction.as_str(),
            id = c.id.as_str(),
            transport = c.labels.transport.as_str(),
            client = %client,
            bytes_tx = Empty,
            bytes_rx = Empty,
            outcome = Empty,
            attested = Empty,
        )
    }

    /// The span of one HTTP request (OHTTP carries one request per tunnel exchange). On the
    /// egress, call [`set_parent_from`] on it before anything else so it joins the ingress's
    /// trace.
    pub fn request_span(&self, method: &str, path: &str) -> Span {
        let c = &self.cells;
        tracing::info_span!(
            target: "tng::tunnel",
            "request",
            otel.kind = if c.direction == crate::Direction::Ingress { "client" } else { "server" },
            otel.status_code = Empty,
            direction = c.direction.as_str(),
            id = c.id.as_str(),
            transport = c.labels.transport.as_str(),
            http.request.method = method,
            url.path = strip_query(path),
            http.response.status_code = Empty,
            bytes_tx = Empty,
            bytes_rx = Empty,
            outcome = Empty,
            attested = Empty,
        )
    }
}

/// The path without its query string: queries carry tokens and user data.
pub(crate) fn strip_query(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    target.get(..end).unwrap_or(target)
}

/// A trace context received in a `traceparent` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent(Parent);

impl RemoteParent {
    /// The trace id in lower hex.
    pub fn trace_id(&self) -> String {
        crate::spans::hex(&self.0.trace_id)
    }

    /// The parent span's id in lower hex.
    pub fn span_id(&self) -> String {
        crate::spans::hex(&self.0.span_id)
    }

    /// Whether the caller records this trace.
    pub fn sampled(&self) -> bool {
        self.0.sampled
    }
}

/// The `traceparent` value naming `span` as the parent, for the inner (sealed) request the
/// ingress sends. `None` when the span is not recorded (no trace exporter, or filtered out), so
/// untraced requests carry nothing.
pub fn inject(span: &Span) -> Option<HeaderValue> {
    let parent = with_record(span, |record| record.as_parent())?;
    HeaderValue::from_str(&format_traceparent(&parent)).ok()
}

/// The remote parent carried by `headers`, if they hold a valid `traceparent`.
pub fn extract(headers: &HeaderMap) -> Option<RemoteParent> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    parse_traceparent(value).map(RemoteParent)
}

/// Makes `span` a child of the trace context in `headers` (the egress side of [`inject`]). Must
/// run before the span has children. Returns whether a parent was set.
pub fn set_parent_from(span: &Span, headers: &HeaderMap) -> bool {
    match extract(headers) {
        Some(RemoteParent(parent)) => {
            with_record(span, |record| record.set_remote_parent(parent)).is_some()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_fragment_never_reach_a_span_or_log() {
        assert_eq!(strip_query("/a/b?token=secret"), "/a/b");
        assert_eq!(strip_query("/a#frag"), "/a");
        assert_eq!(strip_query("http://h/x?y"), "http://h/x");
        assert_eq!(strip_query("/plain"), "/plain");
    }

    #[test]
    fn extract_refuses_garbage_and_reads_a_valid_traceparent() {
        let mut headers = HeaderMap::new();
        assert!(extract(&headers).is_none());
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz-yy-01"));
        assert!(extract(&headers).is_none());
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let parent = extract(&headers).expect("valid traceparent");
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.span_id(), "00f067aa0ba902b7");
        assert!(parent.sampled());
    }

    #[test]
    fn nothing_is_injected_without_a_tracing_layer() {
        assert!(inject(&tracing::info_span!("x")).is_none());
    }
}
