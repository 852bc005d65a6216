//! A tunnel request as metrics, traces and the access log see it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tng_ohttp::bhttp::RequestHead;
use tng_telemetry::{AccessRecord, Outcome};

use super::OhttpEgress;

/// One tunnel request as metrics, trace and access log see it: a counted unit from the moment
/// it is handed to the service until its response body ended.
pub struct Observation {
    unit: tng_telemetry::ConnGuard,
    pub span: tracing::Span,
    method: http::Method,
    path: String,
    pub bytes_in: Arc<AtomicU64>,
    attested: bool,
}

impl Observation {
    pub fn start(context: &OhttpEgress, head: &RequestHead) -> Self {
        let span = context
            .metrics
            .request_span(head.method.as_str(), &head.path);
        // The ingress's trace context arrived sealed, inside the request it belongs to.
        tng_telemetry::set_parent_from(&span, &head.headers);
        Self {
            unit: context.metrics.connection(),
            span,
            method: head.method.clone(),
            path: head.path.clone(),
            bytes_in: Arc::default(),
            attested: context.verifier.is_some(),
        }
    }

    pub fn finish(mut self, status: Option<u16>, outcome: Outcome, bytes_out: u64, upstream: &str) {
        if outcome == Outcome::UpstreamUnreachable {
            self.unit.failed();
        }
        let metrics = self.unit.metrics();
        let duration = self.unit.elapsed();
        metrics.request_done(status, duration);
        AccessRecord {
            method: Some(self.method.as_str()),
            path: Some(&self.path),
            status,
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out,
            duration,
            upstream,
            outcome,
            attested: self.attested,
        }
        .emit(metrics, &self.span);
    }
}
