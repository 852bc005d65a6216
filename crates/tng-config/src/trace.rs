//! The top-level `trace` object: where spans go.

use crate::error::Result;
use crate::exporter::{exporter_type, finish_exporter, parse_otlp, OtlpExporter};
use crate::json::Field;

/// `trace`: absent or `{"exporters": []}` records no spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Every exporter receives every span (upstream crashes with more than one; one bridge
    /// fanning out to several exporters is the fix).
    pub exporters: Vec<TraceExporter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExporter {
    /// Each span printed to the process's stdout when it ends (debugging aid).
    Stdout,
    Otlp(OtlpExporter),
}

// Keys a metric exporter reads; tolerated (with a warning) on the lax `stdout` trace exporter.
const METRIC_EXPORTER_KEYS: [&str; 7] = [
    "type",
    "step",
    "server_url",
    "endpoint",
    "tags",
    "protocol",
    "headers",
];

pub(crate) fn parse_trace(field: &Field<'_>, warnings: &mut Vec<String>) -> Result<TraceConfig> {
    let mut obj = field.object()?;
    let mut exporters = Vec::new();
    if let Some(f) = obj.field("exporters") {
        for item in f.array()? {
            exporters.push(parse_exporter(&item, warnings)?);
        }
    }
    obj.finish(&["exporters"])?;
    Ok(TraceConfig { exporters })
}

fn parse_exporter(field: &Field<'_>, warnings: &mut Vec<String>) -> Result<TraceExporter> {
    let mut obj = field.object()?;
    let (kind, _) = exporter_type(&mut obj, &["stdout", "oltp"])?;
    if kind == "stdout" {
        finish_exporter(obj, "stdout", &["type"], &METRIC_EXPORTER_KEYS, warnings)?;
        return Ok(TraceExporter::Stdout);
    }
    let exporter = parse_otlp(&mut obj)?;
    // Upstream rejects unknown keys here (including `step`).
    obj.finish(&["type", "protocol", "endpoint", "headers"])?;
    Ok(TraceExporter::Otlp(exporter))
}
