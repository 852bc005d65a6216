//! Errors that end an HTTP exchange, rendered the way upstream TNG renders them:
//! `{"code": "<Variant>", "message": "<text>"}` with `content-type: application/json`.
//! Peers only log the code; the status is what matters, so each variant pins its status.

use http::StatusCode;

use crate::http::body::{json_response, Body};

#[derive(Debug, Clone)]
pub struct TngError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl TngError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
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
        )
    }
}

impl std::error::Error for TngError {}
