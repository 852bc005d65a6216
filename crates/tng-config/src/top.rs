use crate::control::{parse_control_interface, parse_endpoint, ControlInterface};
use crate::egress::{parse_egress, Egress};
use crate::error::Result;
use crate::ingress::{parse_ingress, Ingress};
use crate::json::{parse_document, Field};
use crate::metric::{parse_metric, MetricConfig};
use crate::trace::{parse_trace, TraceConfig};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub ingress: Vec<Ingress>,
    pub egress: Vec<Egress>,
    pub control_interface: Option<ControlInterface>,
    pub metric: MetricConfig,
    pub trace: TraceConfig,
    /// Accepted but questionable settings, each `path: message`, for the caller to log.
    pub warnings: Vec<String>,
}

/// Parses and validates an upstream-compatible TNG JSON configuration.
pub fn parse(json: &str) -> Result<Config> {
    let document = parse_document(json)?;
    let mut obj = Field::root(&document).object()?;
    let mut warnings = Vec::new();
    let mut ingress = Vec::new();
    if let Some(f) = obj.field("add_ingress") {
        for (id, entry) in f.array()?.iter().enumerate() {
            ingress.push(parse_ingress(id, entry, &mut warnings)?);
        }
    }
    let mut egress = Vec::new();
    if let Some(f) = obj.field("add_egress") {
        for (id, entry) in f.array()?.iter().enumerate() {
            egress.push(parse_egress(id, entry, &mut warnings)?);
        }
    }
    let control_interface = obj
        .opt("control_interface")
        .map(|f| parse_control_interface(&f))
        .transpose()?;
    let metric = obj
        .opt("metric")
        .map(|f| parse_metric(&f, &mut warnings))
        .transpose()?
        .unwrap_or_default();
    let trace = obj
        .opt("trace")
        .map(|f| parse_trace(&f, &mut warnings))
        .transpose()?
        .unwrap_or_default();
    if let Some(f) = obj.opt("admin_bind") {
        parse_endpoint(&f)?;
        warnings.push(format!(
            "{}: deprecated and ignored (use control_interface.restful)",
            f.path
        ));
    }
    obj.finish(&[
        "add_ingress",
        "add_egress",
        "control_interface",
        "metric",
        "trace",
        "admin_bind",
    ])?;
    Ok(Config {
        ingress,
        egress,
        control_interface,
        metric,
        trace,
        warnings,
    })
}
