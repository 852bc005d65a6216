//! The process's telemetry: built once from the configuration, handed out per entry, shut down
//! last.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use tng_config::{MetricConfig, MetricExporter, TraceConfig};
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::error::TelemetryError;
use crate::instance::{Cells, InstanceMetrics};
use crate::labels::{Direction, InstanceLabels};
use crate::push::{interval, Falcon, PushTask, Sink};
use crate::registry::Registry;
use crate::spans::{Origin, Queue, SpanExporter, SpanLayer};
use crate::trace::TRACED_TARGET_PREFIX;
use crate::{otlp, prometheus};

/// Metrics, traces and their exporters for one process.
pub struct Telemetry {
    registry: Arc<Registry>,
    push: Option<PushTask>,
    meter_provider: Option<SdkMeterProvider>,
    pub(crate) spans: Option<(SpanExporter, Queue)>,
}

impl Telemetry {
    /// Builds the exporters `metric` and `trace` ask for. Must be called inside a tokio runtime
    /// (the push task and the gRPC channels live on it). `version` is reported as
    /// `service.version` and in the Falcon `user-agent`.
    pub fn new(
        metric: &MetricConfig,
        trace: &TraceConfig,
        version: &str,
    ) -> Result<Telemetry, TelemetryError> {
        let registry = Arc::new(Registry::default());
        let mut push = None;
        let mut meter_provider = None;
        if metric.exporters.len() > 1 {
            return Err(TelemetryError::msg("only one metric exporter is supported"));
        }
        if let Some(exporter) = metric.exporters.first() {
            let every = interval(exporter.step());
            match exporter {
                MetricExporter::Stdout { .. } => {
                    push = Some(PushTask::spawn(Arc::clone(&registry), Sink::Stdout, every));
                }
                MetricExporter::Falcon(falcon) => {
                    let sink = Sink::Falcon(Box::new(
                        Falcon::new(falcon, version).map_err(TelemetryError::msg)?,
                    ));
                    push = Some(PushTask::spawn(Arc::clone(&registry), sink, every));
                }
                MetricExporter::Otlp { exporter, step } => {
                    meter_provider =
                        Some(otlp::meter_provider(&registry, exporter, *step, version)?);
                }
            }
        }
        let spans = if trace.exporters.is_empty() {
            None
        } else {
            let origin = Origin {
                resource: vec![
                    ("service.name", "tng".to_owned()),
                    ("service.version", version.to_owned()),
                ],
                scope: otlp::SCOPE,
            };
            Some(SpanExporter::spawn(&trace.exporters, origin)?)
        };
        Ok(Telemetry {
            registry,
            push,
            meter_provider,
            spans,
        })
    }

    /// Telemetry that exports nothing (Prometheus text still works): for tests and tools.
    pub fn disabled() -> Telemetry {
        Telemetry {
            registry: Arc::new(Registry::default()),
            push: None,
            meter_provider: None,
            spans: None,
        }
    }

    /// Registers `add_ingress[id]`; its series exist (at 0) from now on.
    pub fn ingress(&self, id: usize, labels: InstanceLabels) -> InstanceMetrics {
        self.instance(Direction::Ingress, id, labels)
    }

    /// Registers `add_egress[id]`.
    pub fn egress(&self, id: usize, labels: InstanceLabels) -> InstanceMetrics {
        self.instance(Direction::Egress, id, labels)
    }

    fn instance(&self, direction: Direction, id: usize, labels: InstanceLabels) -> InstanceMetrics {
        let traced = self.spans.is_some();
        let cells = Arc::new(Cells::new(direction, id, labels, traced));
        self.registry.add(Arc::clone(&cells));
        InstanceMetrics { cells }
    }

    /// Upstream's `live`: set once every service is ready (it is never reset, as upstream).
    pub fn set_live(&self, live: bool) {
        self.registry.live.store(live, Relaxed);
    }

    /// The body of `GET /metrics`; serve it with [`crate::PROMETHEUS_CONTENT_TYPE`].
    pub fn prometheus_text(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.write_prometheus(&mut out);
        out
    }

    /// [`Telemetry::prometheus_text`] into a reused buffer.
    pub fn write_prometheus(&self, out: &mut String) {
        // Writing into a String cannot fail; an error would be a bug in the encoder.
        if prometheus::encode(Arc::clone(&self.registry), out).is_err() {
            tracing::error!("Prometheus encoding failed");
        }
    }

    /// The layer that records the gateway's spans for the trace exporters; a no-op when `trace`
    /// has no exporter. Only targets starting with `tng` are recorded.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        self.spans.as_ref().map(|(_, queue)| {
            SpanLayer {
                queue: queue.clone(),
            }
            .with_filter(
                Targets::new()
                    .with_target(TRACED_TARGET_PREFIX, tracing::Level::INFO)
                    // The access-log line repeats what its span's attributes already hold; as
                    // a span event it would be recorded twice.
                    .with_target(crate::ACCESS_LOG_TARGET, LevelFilter::OFF)
                    .with_target(crate::LOG_CONTEXT_TARGET, LevelFilter::OFF),
            )
        })
    }

    /// Final export of every metric exporter and flush of every queued span. Call it after the
    /// entries stopped (so the last counts are in) and before logging is torn down.
    pub async fn shutdown(self) {
        if let Some(push) = self.push {
            push.shutdown().await;
        }
        if let Some((exporter, _)) = self.spans {
            exporter.shutdown().await;
        }
        let Some(meter) = self.meter_provider else {
            return;
        };
        // The SDK's shutdown blocks on its exporter thread.
        let joined = tokio::task::spawn_blocking(move || {
            if let Err(e) = meter.shutdown() {
                tracing::error!(error = %e, "final OTLP metric export failed");
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("telemetry shutdown panicked");
        }
    }
}
