//! The destinations as the rest of the process sees them: a handle that routes each line by
//! level (ERROR to the error file when there is one, everything else to the main destination)
//! and hands it to that destination's queue.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::args::LogFormat;
use crate::line::{format_line, Value};
use crate::queue::{DestinationStats, Queue};

/// What happened to the lines of each destination so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub main: DestinationStats,
    /// `None` without an error file.
    pub error: Option<DestinationStats>,
}

/// A handle on the log destinations, for lines that are not `tracing` events: lines carried
/// in from another process (the `tng exec` hook library) or written by this crate. Cheap to
/// clone; never blocks (a full queue drops the line and counts it).
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Destinations>,
}

pub(crate) struct Destinations {
    pub format: LogFormat,
    pub main: Arc<Queue>,
    pub error: Option<Arc<Queue>>,
}

impl LogSink {
    pub(crate) fn new(destinations: Destinations) -> LogSink {
        LogSink {
            inner: Arc::new(destinations),
        }
    }

    /// The line format every destination uses; external lines must be formatted alike
    /// before [`LogSink::write_formatted`].
    pub fn format(&self) -> LogFormat {
        self.inner.format
    }

    /// Formats a line (timestamp now, no span) in the configured format and queues it.
    pub fn write_line(&self, level: Level, target: &str, message: &str) {
        self.write_fields(level, target, message, &[]);
    }

    pub(crate) fn write_fields(
        &self,
        level: Level,
        target: &str,
        message: &str,
        fields: &[(&str, Value<'_>)],
    ) {
        let line = format_line(self.inner.format, level, target, message, fields);
        self.queue_for(level).push(line);
    }

    /// Queues a line that is already formatted (a newline is added when it has none) to the
    /// destination of `level`.
    pub fn write_formatted(&self, level: Level, line: &[u8]) {
        let mut owned = Vec::with_capacity(line.len() + 1);
        owned.extend_from_slice(line);
        if owned.last() != Some(&b'\n') {
            owned.push(b'\n');
        }
        self.queue_for(level).push(owned);
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            main: self.inner.main.stats(),
            error: self.inner.error.as_ref().map(|queue| queue.stats()),
        }
    }

    fn queue_for(&self, level: Level) -> &Queue {
        match &self.inner.error {
            Some(error) if level == Level::ERROR => error,
            _ => &self.inner.main,
        }
    }

    /// Waits until every destination wrote what was queued before, or `deadline` passes.
    pub(crate) fn flush(&self, deadline: Instant) -> bool {
        let main = self.inner.main.flush(deadline);
        let error = self
            .inner
            .error
            .as_ref()
            .is_none_or(|queue| queue.flush(deadline));
        main && error
    }

    pub(crate) fn stop(&self) {
        self.inner.main.stop();
        if let Some(queue) = &self.inner.error {
            queue.stop();
        }
    }
}

/// The `tracing-subscriber` formatter's writer: one per event, queued whole when dropped.
pub(crate) struct Router(pub LogSink);

pub(crate) struct EventWriter<'a> {
    queue: &'a Queue,
    line: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Router {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter {
            queue: &self.0.inner.main,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter<'a> {
        EventWriter {
            queue: self.0.queue_for(*meta.level()),
            line: Vec::new(),
        }
    }
}

impl io::Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.queue.push(std::mem::take(&mut self.line));
        }
    }
}
