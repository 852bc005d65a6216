//! Errors that end an HTTP exchange, rendered the way upstream TNG renders them:
//! `{"code": "<Variant>", "message": "<text>"}` with `content-type: application/json`.
//! Peers only log the code; the status is what matters, so each variant pins its status.
//!
//! The body goes to whoever sent the request, which on the egress's outer leg is anyone on the
//! path (an L7 gateway, a sniffer): what only an operator should read (internal addresses,
//! bytes of the decrypted request, causes from the service) goes into [`TngError::detail`],
//! which is logged and never sent.

use http::StatusCode;

use crate::http::body::{json_response, Body};

#[derive(Debug, Clone)]
pub struct TngError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For the log only.
    pub detail: Option<String>,
}

impl TngError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// Adds text the log shows and the response body does not.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// One WARN line per refusal. The message is the code alone and the rest are fields, so a
    /// flood of one refusal is one line repeated, which the log's rate limit collapses into
    /// a count, whatever the requests carried.
    pub fn log(&self) {
        tracing::warn!(
            status = self.status.as_u16(),
            reason = %self.message,
            detail = self.detail.as_deref().unwrap_or(""),
            "refused: {}",
            self.code
        );
    }

    pub fn into_response(self) -> http::Response<Body> {
        let body = tng_ohttp::api::ErrorBody::new(self.code, &self.message).to_json();
        json_response(self.status, body)
    }
}

impl std::fmt::Display for TngError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )?;
        match &self.detail {
            Some(detail) => write!(f, " [{detail}]"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for TngError {}
