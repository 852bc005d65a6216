//! `RUST_LOG` decides what the log prints, not what other layers (the trace exporter) see.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Seen {
    spans: Arc<AtomicUsize>,
    events: Arc<AtomicUsize>,
}

impl<S: tracing::Subscriber> Layer<S> for Seen {
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        self.spans.fetch_add(1, Relaxed);
    }

    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        self.events.fetch_add(1, Relaxed);
    }
}

#[test]
fn rust_log_warn_quiets_the_log_but_not_the_spans_other_layers_record() {
    let d = dir("filter-scope");
    let main = d.join("a.log");
    let argv = ["--log-format", "json", "--log-file", main.to_str().unwrap()];
    let lookup = |name: &str| (name == "RUST_LOG").then(|| "warn".to_owned());
    let logging =
        tng_logging::build::<tracing_subscriber::Registry>(&args(&argv), &lookup).expect("build");
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry()
        .with(logging.layer)
        .with(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!(target: "tng::tunnel", "request").in_scope(|| {
            tracing::info!(target: "tng::tunnel", "served");
            tracing::warn!(target: "tng::tunnel", "slow backend");
        });
    });
    assert!(
        logging.guard.flush(Duration::from_secs(60)),
        "flush timed out"
    );
    assert_eq!(
        seen.spans.load(Relaxed),
        1,
        "the INFO span reached the other layer"
    );
    assert_eq!(seen.events.load(Relaxed), 2);
    let lines = json_lines(&main);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["fields"]["message"], "slow backend");
    // The log's filter hides the INFO span from the log, so the line has no span context, as
    // when `RUST_LOG` filtered globally.
    assert!(lines[0]["span"].is_null(), "{lines:#?}");
}
