//! One access-log event per completed request (OHTTP) or connection (rats-TLS), under its own
//! target so `RUST_LOG=tng::access_log=off` silences it and `--log-format json` makes every
//! field a JSON key.

use std::time::Duration;

use tracing::Span;

use crate::instance::InstanceMetrics;
use crate::spans::{Status, Value};
use crate::trace::strip_query;

/// The `tracing` target of access-log events.
pub const ACCESS_LOG_TARGET: &str = "tng::access_log";

/// How a request or connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served to the end (whatever the HTTP status).
    Ok,
    /// The upstream (egress, or the service behind it) could not be reached.
    UpstreamUnreachable,
    /// The peer's attestation was refused.
    AttestationFailed,
    /// Refused by the gateway itself (not a TNG request, replay, a limit).
    Refused,
    /// A configured timeout fired.
    Timeout,
    /// The client went away before the end.
    ClientClosed,
    /// Any other error.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamUnreachable => "upstream_unreachable",
            Outcome::AttestationFailed => "attestation_failed",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::ClientClosed => "client_closed",
            Outcome::Error => "error",
        }
    }
}

/// What the access log says about one request or connection. Borrowed fields, so building one
/// allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// `None` for a rats-TLS connection (no HTTP seen).
    pub method: Option<&'a str>,
    /// Path or request target; everything from `?` on is dropped before logging.
    pub path: Option<&'a str>,
    pub status: Option<u16>,
    /// Bytes received from the downstream peer.
    pub bytes_in: u64,
    /// Bytes sent to the downstream peer.
    pub bytes_out: u64,
    pub duration: Duration,
    /// Where the traffic went: the egress address (ingress) or the service address (egress).
    pub upstream: &'a str,
    pub outcome: Outcome,
    pub attested: bool,
}

impl AccessRecord<'_> {
    /// Emits the access-log event for `instance` and records the result on `span` (the
    /// connection or request span of [`InstanceMetrics`]), which sets the OpenTelemetry status.
    pub fn emit(&self, instance: &InstanceMetrics, span: &Span) {
        let c = &instance.cells;
        let path = self.path.map(strip_query);
        // Microsecond precision: `2.207`, not `2.2071870000000002`.
        let duration_ms = self.duration.as_micros() as f64 / 1000.0;
        let failed = self.outcome != Outcome::Ok || self.status.is_some_and(|s| s >= 500);
        if c.traced {
            // Straight into the span's record: through `Span::record` each result would also
            // be formatted by the log layer, for lines that never print it.
            crate::spans::with_record(span, |record| {
                record.set_int("bytes_tx", self.bytes_out);
                record.set_int("bytes_rx", self.bytes_in);
                let outcome = record.text(self.outcome.as_str());
                record.set("outcome", outcome);
                record.set("attested", Value::Bool(self.attested));
                if let Some(status) = self.status {
                    record.set("http.response.status_code", Value::Int(i64::from(status)));
                }
                record.status = if failed { Status::Error } else { Status::Ok };
            });
        }
        macro_rules! event {
            ($level:expr, $($message:tt)+) => {
                tracing::event!(
                    target: ACCESS_LOG_TARGET,
                    $level,
                    direction = c.direction.as_str(),
                    id = c.id.as_str(),
                    transport = c.labels.transport.as_str(),
                    method = self.method,
                    path,
                    status = self.status,
                    bytes_in = self.bytes_in,
                    bytes_out = self.bytes_out,
                    duration_ms,
                    upstream = self.upstream,
                    outcome = self.outcome.as_str(),
                    attested = self.attested,
                    $($message)+
                )
            };
        }
        let ok = self.outcome == Outcome::Ok;
        // tracing wants a constant level per call site.
        macro_rules! at_level {
            ($($message:tt)+) => {
                if ok {
                    event!(tracing::Level::INFO, $($message)+)
                } else {
                    event!(tracing::Level::WARN, $($message)+)
                }
            };
        }
        match (self.method, self.status) {
            // A byte stream (rats-TLS): no HTTP was seen.
            (None, None) => at_level!(
                "stream {} B in, {} B out, {:.2}ms, {}",
                self.bytes_in,
                self.bytes_out,
                duration_ms,
                self.outcome.as_str(),
            ),
            _ => at_level!(
                "{} {} {} {:.2}ms",
                self.method.unwrap_or("-"),
                path.unwrap_or("-"),
                self.status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                duration_ms,
            ),
        }
    }
}
