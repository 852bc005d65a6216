use std::error::Error as StdError;

/// Telemetry could not be set up (an exporter could not be built).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TelemetryError {
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TelemetryError {
    pub(crate) fn new(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        TelemetryError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn msg(message: impl Into<String>) -> Self {
        TelemetryError {
            message: message.into(),
            source: None,
        }
    }
}
