//! Operator logging for `tng`: the upstream 2.9.1+ log flags and line formats, with the
//! guarantees upstream lacks.
//!
//! - **Flags** ([`LogArgs`], flatten it into the top-level clap struct): `--log-format text|json`,
//!   `--log-file`, `--log-error-file`, `--log-rolling`, `--log-max-size`, `--log-max-backups`,
//!   `--log-rate-limit`, each overridden by its `TNG_LOG_*` variable; `RUST_LOG` sets levels
//!   (default [`DEFAULT_FILTER`]). Invalid values are errors naming the flag or variable.
//! - **Lines**: `tracing-subscriber`'s text format, or JSON Lines with `timestamp`, `level`,
//!   `fields` (`message` and the event's fields), `target`, `span` (the innermost span) and
//!   `spans` (root to leaf). ERROR lines go only to the error file when there is one.
//! - **Never blocks the data path**: every destination has a bounded queue and its own writer
//!   thread. A full queue (slow or blocked writer) or a failed write (full disk) drops lines;
//!   drops are counted, said once on stderr when writes start failing, and reported in the
//!   destination itself — at once, then at most every 10 s — as `N log lines lost: <cause>`.
//! - **Rolling**: `FILE.1` (newest) … `FILE.N`, each file at most max-size (one line larger only
//!   when that line alone is). Non-regular paths (`/dev/null`, a FIFO) are never rotated.
//! - **Floods**: repeats of one WARN or ERROR line (same callsite, same message) beyond the
//!   burst of each interval are counted and summarised in one line
//!   (`repeated K more times in 10s: …`).
//! - **External lines**: [`LogSink`] writes lines from elsewhere (the `tng exec` hook library)
//!   into the same destinations.
//!
//! ```no_run
//! use clap::Parser;
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     log: tng_logging::LogArgs,
//! }
//! let cli = Cli::parse();
//! let _guard = tng_logging::init(&cli.log)?; // flushes when dropped
//! tracing::info!("started");
//! # anyhow::Ok(())
//! ```
#![forbid(unsafe_code)]

mod args;
mod error;
mod fields;
mod limit;
mod line;
mod open;
mod queue;
mod rolling;
mod settings;
mod sink;
mod writer;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use args::{
    parse_size, LogArgs, LogFormat, RateLimit, RateLimitSpec, DEFAULT_MAX_BACKUPS,
    DEFAULT_MAX_SIZE, DEFAULT_RATE_LIMIT,
};
pub use error::LogError;
pub use queue::DestinationStats;
pub use settings::{FileSpec, Rolling, Settings, DEFAULT_FILTER};
pub use sink::{LogSink, LogStats};

use limit::{Limiter, RateLimitFilter};
use queue::Queue;
use sink::{Destinations, Router};
use writer::{Output, Target, Writer};

/// How long dropping the guard waits for the writers to finish (a blocked writer is given up).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs logging as the global `tracing` subscriber, reading the environment. Start-up
/// warnings (settings without effect, a non-regular file with rolling) are logged as WARN
/// lines before this returns. Keep the guard until the process ends: dropping it flushes.
pub fn init(args: &LogArgs) -> anyhow::Result<LogGuard> {
    let logging = build(args, &|name| std::env::var(name).ok())?;
    tracing_subscriber::registry()
        .with(logging.layer)
        .try_init()
        .map_err(|err| anyhow::anyhow!("cannot install the log subscriber: {err}"))?;
    for warning in &logging.warnings {
        tracing::warn!(target: "tng::logging", "{warning}");
    }
    Ok(logging.guard)
}

/// Logging as a layer, for callers that compose their own subscriber (or tests, with
/// `tracing::subscriber::with_default`).
pub struct Logging<S> {
    /// The level filter (`RUST_LOG`), the rate limiter and the formatter.
    pub layer: Box<dyn Layer<S> + Send + Sync + 'static>,
    pub guard: LogGuard,
    /// To be logged once the layer is installed.
    pub warnings: Vec<String>,
}

/// Resolves the settings with `env` as the environment, opens the files and starts the
/// writer threads. Every error names the flag or variable at fault.
pub fn build<S>(
    args: &LogArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Logging<S>, LogError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let settings = Settings::resolve(args, env)?;
    let mut warnings = settings.warnings.clone();
    let main = match &settings.file {
        Some(spec) => open::open(spec, settings.rolling, &mut warnings)?,
        None => Output {
            target: Target::Stdout,
            path: None,
            size: 0,
            rolling: None,
        },
    };
    let error = settings
        .error_file
        .as_ref()
        .map(|spec| open::open(spec, settings.rolling, &mut warnings))
        .transpose()?;
    open::check_distinct(
        settings.file.as_ref().zip(Some(&main)),
        settings.error_file.as_ref().zip(error.as_ref()),
    )?;

    let format = settings.format;
    let main_queue = start_writer("tng-log-writer", main, format, Level::WARN, &settings.file)?;
    let error_queue = match error {
        Some(out) => Some(start_writer(
            "tng-log-error-writer",
            out,
            format,
            Level::ERROR,
            &settings.error_file,
        )?),
        None => None,
    };
    let sink = LogSink::new(Destinations {
        format,
        main: main_queue,
        error: error_queue,
    });
    let limiter = settings
        .rate_limit
        .map(|limit| Arc::new(Limiter::new(limit, sink.clone())));
    let housekeeper = limiter.clone().map(start_housekeeper).transpose()?;

    let ansi =
        settings.file.is_none() && format == LogFormat::Text && std::io::stdout().is_terminal();
    let formatter: Box<dyn Layer<S> + Send + Sync> = match format {
        LogFormat::Text if ansi => tracing_subscriber::fmt::layer()
            .with_ansi(true)
            .with_writer(Router(sink.clone()))
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(fields::PlainFields)
            .with_writer(Router(sink.clone()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(Router(sink.clone()))
            .boxed(),
    };
    let filter =
        EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // `RUST_LOG` filters this layer only: as a global filter it would also hide the INFO
    // spans the trace exporter records, so quieting the log would silently stop traces.
    let layer = formatter
        .with_filter(limiter.clone().map(RateLimitFilter))
        .with_filter(filter)
        .boxed();
    Ok(Logging {
        layer,
        guard: LogGuard {
            sink,
            limiter,
            _housekeeper: housekeeper,
        },
        warnings,
    })
}

fn start_writer(
    thread: &str,
    out: Output,
    format: LogFormat,
    report_level: Level,
    spec: &Option<FileSpec>,
) -> Result<Arc<Queue>, LogError> {
    let name = spec
        .as_ref()
        .map(|s| s.path.display().to_string())
        .unwrap_or_else(|| "stdout".to_string());
    let (queue, rx) = Queue::new(name);
    let queue = Arc::new(queue);
    Writer::spawn(thread, rx, queue.clone(), out, format, report_level)
        .map_err(LogError::Thread)?;
    Ok(queue)
}

/// Writes the summaries of ended rate-limit intervals when no new line comes to do it.
/// Ends when its sender (held by the guard) is dropped.
fn start_housekeeper(limiter: Arc<Limiter>) -> Result<Sender<()>, LogError> {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name("tng-log-housekeeper".into())
        .spawn(move || loop {
            match stop_rx.recv_timeout(Duration::from_secs(1)) {
                Err(RecvTimeoutError::Timeout) => limiter.sweep(Instant::now(), false),
                _ => return,
            }
        })
        .map_err(LogError::Thread)?;
    Ok(stop_tx)
}

/// Keeps logging running; dropping it writes pending rate-limit summaries, flushes every
/// destination (waiting at most 5 s for a blocked one) and ends the writer threads.
pub struct LogGuard {
    sink: LogSink,
    limiter: Option<Arc<Limiter>>,
    _housekeeper: Option<Sender<()>>,
}

impl LogGuard {
    /// A handle for writing external lines into the same destinations.
    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// What happened to the lines so far.
    pub fn stats(&self) -> LogStats {
        self.sink.stats()
    }

    /// Writes pending rate-limit summaries and waits until every line queued so far is
    /// written, at most `timeout`. Returns whether every destination finished in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if let Some(limiter) = &self.limiter {
            limiter.sweep(Instant::now(), true);
        }
        self.sink.flush(deadline)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush(FLUSH_TIMEOUT);
        self.sink.stop();
    }
}

#[cfg(test)]
mod testing {
    use crossbeam_channel::Receiver;

    use super::*;

    /// A sink whose queue nobody writes; the receiver keeps it connected.
    pub(crate) fn sink_without_writer() -> (LogSink, Receiver<queue::Msg>) {
        let (queue, rx) = Queue::new("test".into());
        let sink = LogSink::new(Destinations {
            format: LogFormat::Text,
            main: Arc::new(queue),
            error: None,
        });
        (sink, rx)
    }
}
