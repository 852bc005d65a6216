//! Chunked OHTTP bodies: the egress opening a request (`header ‖ chunks`) and the ingress
//! opening a response (`nonce ‖ chunks`), both fed in input-chosen reads, with the plaintext
//! passed on to the BHTTP decoder as the tunnel does.

use std::mem::Discriminant;

use tng_ohttp::chunked::{OhttpError, RequestHeader, ResponseDecoder, ServerRequest};

use crate::bhttp::decode_stream;
use crate::fixtures;
use crate::split::{Control, Splits};

/// What a receiver made of a body: the plaintext in order, and how it ended.
#[derive(Debug)]
struct Opened {
    plaintext: Vec<u8>,
    end: Result<(), Discriminant<OhttpError>>,
}

/// The calls the egress and ingress make on their opener, in their order.
trait Opener {
    fn push(&mut self, data: &[u8]) -> Result<(), OhttpError>;
    fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, OhttpError>;
    fn finish(&mut self) -> Result<bytes::Bytes, OhttpError>;
}

impl Opener for ServerRequest {
    fn push(&mut self, data: &[u8]) -> Result<(), OhttpError> {
        ServerRequest::push(self, data)
    }
    fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, OhttpError> {
        ServerRequest::next_chunk(self)
    }
    fn finish(&mut self) -> Result<bytes::Bytes, OhttpError> {
        ServerRequest::finish(self)
    }
}

impl Opener for ResponseDecoder {
    fn push(&mut self, data: &[u8]) -> Result<(), OhttpError> {
        ResponseDecoder::push(self, data)
    }
    fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, OhttpError> {
        ResponseDecoder::next_chunk(self)
    }
    fn finish(&mut self) -> Result<bytes::Bytes, OhttpError> {
        ResponseDecoder::finish(self)
    }
}

fn open(opener: &mut impl Opener, body: &[u8], splits: Splits) -> Opened {
    let mut plaintext = Vec::new();
    let mut run = || -> Result<(), OhttpError> {
        for piece in splits.pieces(body) {
            opener.push(piece)?;
            while let Some(chunk) = opener.next_chunk()? {
                assert!(!chunk.is_empty(), "next_chunk returned an empty chunk");
                plaintext.extend_from_slice(&chunk);
            }
        }
        let last = opener.finish()?;
        plaintext.extend_from_slice(&last);
        Ok(())
    };
    let end = run().map_err(|e| std::mem::discriminant(&e));
    if end.is_ok() {
        // A finished stream takes nothing more.
        assert!(opener.push(b"x").is_err(), "push accepted after finish");
        assert!(opener.finish().is_err(), "finish succeeded twice");
    }
    Opened { plaintext, end }
}

/// Read boundaries must not change the outcome: the same plaintext when the body is valid, an
/// error for both otherwise. Which error comes first may differ: one big read lets the reader
/// see an oversized chunk header before it opens (and rejects) an earlier chunk, small reads
/// the other way round; for the same reason one plaintext only has to be a prefix of the
/// other then.
fn assert_same(whole: &Opened, split: &Opened) {
    assert_eq!(
        whole.end.is_ok(),
        split.end.is_ok(),
        "outcome depends on read boundaries: {:?} in one read, {:?} in pieces",
        whole.end,
        split.end
    );
    if whole.end.is_ok() {
        assert_eq!(
            whole.plaintext, split.plaintext,
            "plaintext depends on reads"
        );
    } else {
        let n = whole.plaintext.len().min(split.plaintext.len());
        assert_eq!(
            whole.plaintext[..n],
            split.plaintext[..n],
            "plaintext differs"
        );
    }
}

/// Input: [`Control`] bytes, then a request body from the OHTTP header on (what follows the
/// metadata frame). Flags: bit 0 = HPKE Auth mode with the fixture sender key. Unlike the
/// response target this does not open the body a second time in one read: every request
/// costs a key agreement, which dominates the run time, and the chunk reader whose read
/// boundaries matter is the one `chunked_response` already checks that way.
pub fn chunked_request(data: &[u8]) {
    let Some((control, body)) = Control::parse(data) else {
        return;
    };
    let Ok(header) = RequestHeader::parse(body) else {
        return;
    };
    assert_eq!(header.encode()[..], body[..RequestHeader::LEN]);
    let ciphertext = &body[RequestHeader::LEN..];
    let key = fixtures::server_key();
    let setup = if control.flags & 1 == 0 {
        ServerRequest::new(key, &header)
    } else {
        ServerRequest::new_auth(key, &header, fixtures::sender_public())
    };
    let Ok(mut request) = setup else {
        return;
    };
    let split = open(&mut request, ciphertext, control.splits);
    if split.end.is_ok() {
        decode_stream(&split.plaintext, control.splits, Default::default());
    }
}

/// Input: [`Control`] bytes, then a response body (`response nonce ‖ chunks`) answering
/// [`fixtures::response_client`]'s request.
pub fn chunked_response(data: &[u8]) {
    let Some((control, body)) = Control::parse(data) else {
        return;
    };
    let client = fixtures::response_client();
    let split = open(&mut client.response_decoder(), body, control.splits);
    let whole = open(&mut client.response_decoder(), body, Splits::whole());
    assert_same(&whole, &split);
    if split.end.is_ok() {
        decode_stream(&split.plaintext, control.splits, Default::default());
    }
}
