//! Spans exported as OTLP traces, without the OpenTelemetry SDK on the data path.
//!
//! `tracing-opentelemetry` and the SDK's batch processor built an SDK span with boxed
//! attributes per `tracing` span, woke the exporter thread per span and converted each span
//! again into the protobuf types: about 54 k instructions per OHTTP request on the egress
//! (+8.5 %). Here a span is one [`record::SpanRecord`] (its strings in one buffer), queued on
//! close under a lock, and encoded straight to OTLP protobuf or JSON by the exporter task.
//!
//! `layer` records (capture side of the pipeline), `export` batches and sends, `encode` owns
//! the wire formats; `record` is the span model and W3C `traceparent`.

mod encode;
mod export;
mod layer;
mod record;

pub(crate) use encode::Origin;
pub(crate) use export::{Queue, SpanExporter};
pub(crate) use layer::{with_record, SpanLayer};
pub(crate) use record::{format_traceparent, hex, parse_traceparent, Parent, Status, Value};

#[cfg(test)]
mod tests;
