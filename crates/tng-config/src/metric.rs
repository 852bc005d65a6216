//! The top-level `metric` object: upstream's push exporters.

use crate::error::Result;
use crate::exporter::{check_url, exporter_type, finish_exporter, parse_otlp, step, OtlpExporter};
use crate::json::Field;

/// Upstream's default export interval for `stdout` and `falcon`, in seconds.
pub const DEFAULT_METRIC_STEP: u64 = 60;

/// `metric`: absent or `{"exporters": []}` exports nothing (the Prometheus endpoint of the
/// control interface is independent of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricConfig {
    /// At most one, as upstream.
    pub exporters: Vec<MetricExporter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricExporter {
    /// One `current metrics` log event per export.
    Stdout {
        step: u64,
    },
    Falcon(FalconExporter),
    /// `step` is required here (upstream has no default for OTLP).
    Otlp {
        exporter: OtlpExporter,
        step: u64,
    },
}

impl MetricExporter {
    /// Seconds between exports as configured. `0` is accepted, as upstream, and means "the
    /// OpenTelemetry default" (`OTEL_METRIC_EXPORT_INTERVAL` or 60 s).
    pub fn step(&self) -> u64 {
        match self {
            MetricExporter::Stdout { step } | MetricExporter::Otlp { step, .. } => *step,
            MetricExporter::Falcon(f) => f.step,
        }
    }
}

/// An Open-Falcon agent push: `POST {server_url}/v1/push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FalconExporter {
    /// An `http://` URL; the push path is appended by plain concatenation.
    pub server_url: String,
    /// Falcon's `endpoint` (host name) field of every sample.
    pub endpoint: String,
    /// Written first into every sample's `tags`, in this order.
    pub tags: Vec<(String, String)>,
    pub step: u64,
}

const STDOUT_KEYS: [&str; 2] = ["type", "step"];
const FALCON_KEYS: [&str; 5] = ["type", "server_url", "endpoint", "tags", "step"];
const OTLP_KEYS: [&str; 5] = ["type", "protocol", "endpoint", "headers", "step"];
const ALL_KEYS: [&str; 7] = [
    "type",
    "step",
    "server_url",
    "endpoint",
    "tags",
    "protocol",
    "headers",
];

pub(crate) fn parse_metric(field: &Field<'_>, warnings: &mut Vec<String>) -> Result<MetricConfig> {
    let mut obj = field.object()?;
    let mut exporters = Vec::new();
    if let Some(f) = obj.field("exporters") {
        for item in f.array()? {
            if !exporters.is_empty() {
                return Err(item.err("only one metric exporter is supported (as upstream)"));
            }
            exporters.push(parse_exporter(&item, warnings)?);
        }
    }
    obj.finish(&["exporters"])?;
    Ok(MetricConfig { exporters })
}

fn parse_exporter(field: &Field<'_>, warnings: &mut Vec<String>) -> Result<MetricExporter> {
    let mut obj = field.object()?;
    let (kind, _) = exporter_type(&mut obj, &["stdout", "falcon", "oltp"])?;
    let (exporter, own): (_, &[&str]) = match kind {
        "stdout" => (
            MetricExporter::Stdout {
                step: step(&mut obj, Some(DEFAULT_METRIC_STEP))?,
            },
            &STDOUT_KEYS,
        ),
        "falcon" => {
            let url_field = obj.req("server_url")?;
            let server_url = url_field.string()?;
            if server_url
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            {
                return Err(url_field.err(
                    "an https:// Falcon agent is not supported by this implementation (use its http:// address)",
                ));
            }
            check_url(&url_field, &server_url, &["http"])?;
            let endpoint = obj.req("endpoint")?.string()?;
            let tags = match obj.field("tags") {
                Some(f) => f.string_pairs()?,
                None => Vec::new(),
            };
            let step = step(&mut obj, Some(DEFAULT_METRIC_STEP))?;
            (
                MetricExporter::Falcon(FalconExporter {
                    server_url,
                    endpoint,
                    tags,
                    step,
                }),
                &FALCON_KEYS,
            )
        }
        _ => {
            let exporter = parse_otlp(&mut obj)?;
            let step = step(&mut obj, None)?;
            (MetricExporter::Otlp { exporter, step }, &OTLP_KEYS)
        }
    };
    finish_exporter(obj, kind, own, &ALL_KEYS, warnings)?;
    Ok(exporter)
}
