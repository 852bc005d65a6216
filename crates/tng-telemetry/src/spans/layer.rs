//! The `tracing` layer that turns the gateway's spans into [`SpanRecord`]s: opened with the
//! span, filled as fields are recorded, handed to the exporter's queue when the span closes.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::export::Queue;
use super::record::{now_ns, Event, SpanRecord, Value};

pub(crate) struct SpanLayer {
    pub(crate) queue: Queue,
}

/// Writes `tracing` field values into a record (or into one of its events).
struct Fields<'a> {
    record: &'a mut SpanRecord,
    /// `Some` while visiting an event: its attributes and message go there.
    event: Option<&'a mut Event>,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        match self.event.as_deref_mut() {
            Some(event) if field.name() == "message" => event.name = value,
            Some(event) => event.attributes.push((field.name(), value)),
            None => self.record.set(field.name(), value),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = self.record.text(value);
        self.put(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let value = self.record.display(value);
        self.put(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Value::Int(v)),
            // Beyond i64 an OTLP integer cannot hold it; kept exact as text.
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::Float(value));
    }
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Behind a per-layer filter, `parent()` is the nearest ancestor this layer records.
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanRecord>()
                .map(SpanRecord::as_parent)
        });
        let mut record = SpanRecord::new(span.name(), parent);
        attrs.record(&mut Fields {
            record: &mut record,
            event: None,
        });
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(record) = extensions.get_mut::<SpanRecord>() {
            values.record(&mut Fields {
                record,
                event: None,
            });
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(record) = extensions.get_mut::<SpanRecord>() else {
            return;
        };
        let mut recorded = Event {
            time_ns: now_ns(),
            name: Value::Text { start: 0, end: 0 },
            attributes: Vec::new(),
        };
        recorded.name = record.text(event.metadata().name());
        event.record(&mut Fields {
            record,
            event: Some(&mut recorded),
        });
        let error = *event.metadata().level() == tracing::Level::ERROR;
        record.push_event(recorded, error);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut record) = span.extensions_mut().remove::<SpanRecord>() else {
            return;
        };
        if record.sampled {
            record.end_ns = now_ns();
            self.queue.push(record);
        }
    }
}

/// Runs `f` on the record of `span`, if the current subscriber records it: a span that is
/// disabled, filtered out, or under a subscriber without the registry has none.
pub(crate) fn with_record<R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut SpanRecord) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<SpanRecord>().map(f)
    })
    .flatten()
}
