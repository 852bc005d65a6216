//! TNG's observability: upstream's six metrics (`cx_total`, `cx_active`, `cx_failed`,
//! `tx_bytes_total`, `rx_bytes_total`, `live`) with their labels and push exporters (`stdout`,
//! `falcon`, OTLP over gRPC and HTTP), a Prometheus exposition with request, latency,
//! attestation, key, cluster and limit metrics, spans per connection and per request with W3C
//! context carried inside the encrypted request, and the access-log event.
//!
//! One set of atomics per ingress/egress entry is the single source every exporter reads at
//! export time, so the data path pays one relaxed atomic add per update whatever is configured:
//!
//! ```no_run
//! # async fn run(config: tng_config::Config) -> Result<(), tng_telemetry::TelemetryError> {
//! use std::time::Duration;
//! use tng_telemetry::{Endpoints, InstanceLabels, Telemetry, Transport};
//!
//! let telemetry = Telemetry::new(&config.metric, &config.trace, "2.12.0")?;
//! let ingress = telemetry.ingress(0, InstanceLabels {
//!     mode: "mapping".into(),
//!     transport: Transport::Ohttp,
//!     endpoints: Endpoints::InOut { listen: "0.0.0.0:8080".into(), upstream: "198.18.0.2:8080".into() },
//! });
//! telemetry.set_live(true);
//! let conn = ingress.connection();          // cx_total + 1, cx_active + 1
//! conn.rx(89);
//! conn.tx(210);
//! ingress.request_done(Some(200), Duration::from_millis(3));
//! drop(conn);                               // cx_active - 1, duration observed
//! let body = telemetry.prometheus_text();   // GET /metrics
//! telemetry.shutdown().await;               // final export, spans flushed
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod access_log;
mod error;
mod histogram;
mod instance;
mod labels;
mod otlp;
mod prometheus;
mod push;
mod registry;
mod spans;
mod telemetry;
mod trace;

pub use access_log::{AccessRecord, Outcome, ACCESS_LOG_TARGET};
pub use error::TelemetryError;
pub use instance::{ConnGuard, InstanceMetrics};
pub use labels::{
    Attestation, AttestationFailure, Direction, Endpoints, InstanceLabels, Limit, Transport,
};
pub use prometheus::PROMETHEUS_CONTENT_TYPE;
pub use push::STDOUT_METRICS_TARGET;
pub use telemetry::Telemetry;
pub use trace::{extract, inject, set_parent_from, RemoteParent, LOG_CONTEXT_TARGET, TRACEPARENT};
