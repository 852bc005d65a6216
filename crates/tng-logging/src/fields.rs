//! The text format's fields, `name=value` separated by spaces with the message bare — what
//! `tracing-subscriber`'s default writes without colours, minus its cost: the default wraps
//! every name and `=` in a terminal style even when colours are off, and formatting those empty
//! styles took half the instructions of an access-log line.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Used only when colours are off; with colours the default formatter styles the names.
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // Fields a `log` record carries over into its event; the default format hides them.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.writer.write_char(' ');
        }
        if self.result.is_ok() {
            self.result = if name == "message" {
                self.writer.write_fmt(value)
            } else {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.writer, "{name}={value}")
            };
        }
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// Everything the events below write after the timestamp, with `fields` or the default.
    fn render(plain: bool) -> String {
        let lines = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(lines.clone());
        let emit = || {
            let span = tracing::info_span!("conn", listener = "egress0:1", peer = %"198.18.0.1:2");
            let _entered = span.enter();
            tracing::info!(
                status = 200,
                path = "/a b",
                bytes = 7u64,
                ok = true,
                ratio = 0.5,
                r#type = "x",
                "GET {} done",
                "/a"
            );
            tracing::warn!(message = "bare str message", error = %"refused");
            span.record("peer", "198.18.0.3:4");
            tracing::info!("after record");
        };
        if plain {
            let subscriber = tracing_subscriber::registry().with(layer.fmt_fields(PlainFields));
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, emit);
        }
        let out = lines.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_match_the_default_format_without_colours() {
        let plain = render(true);
        assert_eq!(plain, render(false));
        assert!(plain.contains(
            "conn{listener=\"egress0:1\" peer=198.18.0.1:2}: tng_logging::fields::tests: GET /a done \
             status=200 path=\"/a b\" bytes=7 ok=true ratio=0.5 type=\"x\"\n"
        ), "{plain}");
    }
}
