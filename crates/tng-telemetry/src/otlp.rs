//! OTLP export through the OpenTelemetry SDK: upstream's six instruments as observable
//! instruments reading the shared atomics. Spans have their own exporter (`crate::spans`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use tng_config::{OtlpExporter, OtlpProtocol};

use crate::error::TelemetryError;
use crate::instance::Cells;
use crate::push::interval;
use crate::registry::{Registry, UPSTREAM_INSTRUMENTS};

/// The SDK's default would be 10 s; upstream uses 5 s.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Instrumentation scope of every metric and span, as upstream.
pub(crate) const SCOPE: &str = "tng";

pub(crate) fn resource(version: &str) -> Resource {
    Resource::builder()
        .with_service_name("tng")
        .with_attribute(KeyValue::new("service.version", version.to_owned()))
        .build()
}

pub(crate) fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

pub(crate) fn header_map(config: &OtlpExporter) -> Result<http::HeaderMap, TelemetryError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in &config.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| TelemetryError::new(format!("invalid OTLP header name {name:?}"), e))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|e| TelemetryError::new(format!("invalid OTLP header value for {name}"), e))?;
        map.append(name, value);
    }
    Ok(map)
}

fn http_protocol(protocol: OtlpProtocol) -> Protocol {
    match protocol {
        OtlpProtocol::HttpJson => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    }
}

pub(crate) fn check_http(config: &OtlpExporter) -> Result<(), TelemetryError> {
    if config.protocol != OtlpProtocol::Grpc && is_https(&config.endpoint) {
        return Err(TelemetryError::msg(format!(
            "OTLP over HTTPS ({}) is not supported by this implementation; use an http:// collector or protocol `grpc`",
            config.endpoint
        )));
    }
    Ok(())
}

fn tls(endpoint: &str) -> Option<ClientTlsConfig> {
    is_https(endpoint).then(|| ClientTlsConfig::new().with_native_roots())
}

fn metric_exporter(
    config: &OtlpExporter,
) -> Result<opentelemetry_otlp::MetricExporter, TelemetryError> {
    check_http(config)?;
    let built = match config.protocol {
        OtlpProtocol::Grpc => {
            let mut builder = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(&config.endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .with_compression(Compression::Gzip)
                .with_metadata(MetadataMap::from_headers(header_map(config)?));
            if let Some(tls) = tls(&config.endpoint) {
                builder = builder.with_tls_config(tls);
            }
            builder.build()
        }
        protocol => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(&config.endpoint)
            .with_protocol(http_protocol(protocol))
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>())
            .build(),
    };
    built.map_err(|e| {
        TelemetryError::new(
            format!(
                "cannot create the OTLP metric exporter for {}",
                config.endpoint
            ),
            e,
        )
    })
}

/// A meter provider exporting upstream's instruments to `config` every `step` seconds.
pub(crate) fn meter_provider(
    registry: &Arc<Registry>,
    config: &OtlpExporter,
    step: u64,
    version: &str,
) -> Result<SdkMeterProvider, TelemetryError> {
    let reader = PeriodicReader::builder(metric_exporter(config)?)
        .with_interval(interval(step))
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource(version))
        .with_reader(reader)
        .build();
    register_instruments(&provider.meter(SCOPE), registry);
    Ok(provider)
}

fn attributes(cells: &Cells) -> Vec<KeyValue> {
    cells
        .upstream_attributes()
        .into_iter()
        .map(|(k, v)| KeyValue::new(k, v))
        .collect()
}

/// Observable instruments read the atomics at collection time, so the data path pays nothing
/// for OTLP. Descriptions and units are upstream's (spec §2.1).
fn register_instruments(meter: &Meter, registry: &Arc<Registry>) {
    let descriptions = [
        "Total number of connections handled since the instance started",
        "The number of active connections",
        "Total number of failed connections since the instance started",
        "The total number of bytes sent",
        "The total number of bytes received",
    ];
    for ((name, read), description) in UPSTREAM_INSTRUMENTS.into_iter().zip(descriptions) {
        let registry = Arc::clone(registry);
        if name == "cx_active" {
            meter
                .i64_observable_up_down_counter(name)
                .with_description(description)
                .with_callback(move |observer| {
                    for cells in registry.instances() {
                        observer.observe(read(&cells), &attributes(&cells));
                    }
                })
                .build();
            continue;
        }
        let builder = meter
            .u64_observable_counter(name)
            .with_description(description);
        let builder = if name.ends_with("_bytes_total") {
            builder.with_unit("bytes")
        } else {
            builder
        };
        builder
            .with_callback(move |observer| {
                for cells in registry.instances() {
                    let value = u64::try_from(read(&cells)).unwrap_or(0);
                    observer.observe(value, &attributes(&cells));
                }
            })
            .build();
    }
    let registry = Arc::clone(registry);
    meter
        .u64_observable_gauge("live")
        .with_description("Indicates the server is alive or not")
        .with_callback(move |observer| {
            let live = registry.live.load(std::sync::atomic::Ordering::Relaxed);
            observer.observe(u64::from(live), &[]);
        })
        .build();
}
