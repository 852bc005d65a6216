//! The process's telemetry: built once from the configuration, handed out per entry, shut down
//! last.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
use crate::trace::TRACED_TARGET_PREFIX;
use crate::{otlp, prometheus};

/// Metrics, traces and their exporters for one process.
pub struct Telemetry {
    registry: Arc<Registry>,
    push: Option<PushTask>,
    meter_provider: Option<SdkMeterProvider>,
    tracer_provider: Option<SdkTracerProvider>,
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
        let tracer_provider = otlp::tracer_provider(trace, version)?;
        Ok(Telemetry {
            registry,
            push,
            meter_provider,
            tracer_provider,
        })
    }

    /// Telemetry that exports nothing (Prometheus text still works): for tests and tools.
    pub fn disabled() -> Telemetry {
        Telemetry {
            registry: Arc::new(Registry::default()),
            push: None,
            meter_provider: None,
            tracer_provider: None,
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
        let traced = self.tracer_provider.is_some();
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

    /// The layer that turns the gateway's spans into OpenTelemetry spans; a no-op when `trace`
    /// has no exporter. Only targets starting with `tng` are recorded.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        self.tracer_provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(otlp::SCOPE))
                .with_location(false)
                .with_threads(false)
                // Busy/idle times read the clock on every poll of every instrumented future,
                // and nothing here needs the OpenTelemetry context attached while a span is
                // entered (the parent comes from the tracing span tree, `traceparent` from
                // the span itself).
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_filter(
                    Targets::new()
                        .with_target(TRACED_TARGET_PREFIX, tracing::Level::INFO)
                        // The access-log line repeats what its span's attributes already
                        // hold; as a span event it would be recorded twice.
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
        let meter = self.meter_provider;
        let tracer = self.tracer_provider;
        // The SDK's shutdown blocks on its exporter threads.
        let joined = tokio::task::spawn_blocking(move || {
            if let Some(provider) = meter {
                if let Err(e) = provider.shutdown() {
                    tracing::error!(error = %e, "final OTLP metric export failed");
                }
            }
            if let Some(provider) = tracer {
                if let Err(e) = provider.shutdown() {
                    tracing::error!(error = %e, "flushing spans failed");
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("telemetry shutdown panicked");
        }
    }
}
