//! Indeterminate-length encoding, written piecewise so bodies can stream.

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, StatusCode};

use super::{BhttpError, RequestHead};
use crate::varint;

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Field lines then the zero terminator. `HeaderName`s are already lower case.
fn put_fields(out: &mut BytesMut, fields: &HeaderMap) {
    for (name, value) in fields {
        put_bytes(out, name.as_str().as_bytes());
        put_bytes(out, value.as_bytes());
    }
    out.put_u8(0);
}

/// Framing indicator 2, control data and header section.
pub fn encode_request_head(head: &RequestHead, out: &mut BytesMut) {
    out.put_u8(2);
    put_bytes(out, head.method.as_str().as_bytes());
    put_bytes(out, head.scheme.as_bytes());
    put_bytes(out, head.authority.as_bytes());
    put_bytes(out, head.path.as_bytes());
    put_fields(out, &head.headers);
}

/// Framing indicator 3, final status and header section. Informational statuses are refused,
/// as upstream's encoder does: the tunnel carries no 1xx responses.
pub fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    out: &mut BytesMut,
) -> Result<(), BhttpError> {
    if status.is_informational() {
        return Err(BhttpError::InformationalStatus(status.as_u16()));
    }
    out.put_u8(3);
    varint::encode(u64::from(status.as_u16()), out);
    put_fields(out, headers);
    Ok(())
}

/// One content chunk. Empty data writes nothing: a zero-length chunk ends the content.
pub fn encode_data(data: &[u8], out: &mut BytesMut) {
    if !data.is_empty() {
        put_bytes(out, data);
    }
}

pub fn encode_end_of_content(out: &mut BytesMut) {
    out.put_u8(0);
}

/// Trailer section (just the terminator when there are none).
pub fn encode_trailers(trailers: &HeaderMap, out: &mut BytesMut) {
    put_fields(out, trailers);
}
