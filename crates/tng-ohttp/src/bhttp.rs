//! Binary HTTP (RFC 9292): a streaming, sans-IO decoder for all four framings and an encoder
//! for the indeterminate-length forms upstream TNG always emits (spec §4.5).

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::Decoder;
pub use encode::{
    encode_data, encode_end_of_content, encode_request_head, encode_response_head, encode_trailers,
};

/// Request control data and header section.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: http::Method,
    /// Empty for origin-form requests (HTTP/1.1 clients), as upstream encodes them.
    pub scheme: String,
    pub authority: String,
    /// Path and query.
    pub path: String,
    pub headers: http::HeaderMap,
}

/// Final response status and header section.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
}

#[derive(Debug)]
pub enum Event {
    RequestHead(RequestHead),
    ResponseHead(ResponseHead),
    Data(bytes::Bytes),
    /// Only produced for a non-empty trailer section.
    Trailers(http::HeaderMap),
    End,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest header or trailer section (and request control data) accepted, in encoded bytes.
    pub max_field_section: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_section: 64 * 1024,
        }
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BhttpError {
    #[error("binary HTTP message truncated")]
    Truncated,
    #[error("field section larger than the limit of {limit} bytes")]
    FieldSectionTooLarge { limit: usize },
    #[error("request control data larger than the limit of {limit} bytes")]
    ControlDataTooLarge { limit: usize },
    #[error("unknown binary HTTP framing indicator {0}")]
    UnexpectedFraming(u64),
    #[error("invalid header field: {0}")]
    InvalidHeader(String),
    #[error("invalid method: {0}")]
    InvalidMethod(String),
    #[error("invalid {field}: not UTF-8")]
    InvalidControlData { field: &'static str },
    #[error("invalid status code {0}")]
    InvalidStatus(u64),
    #[error("informational (1xx) status {0} cannot be encoded as a final response")]
    InformationalStatus(u16),
    #[error("non-zero padding after the end of the message")]
    InvalidPadding,
    #[error("known-length field section of {declared} bytes ended inside a field line")]
    MalformedFieldSection { declared: u64 },
}
