//! Encodes a plaintext HTTP body as BHTTP and seals it chunk by chunk into an outer body.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, StreamBody};
use tng_ohttp::bhttp;

use super::ChunkSealer;
use crate::http::body::{boxed, Body, BoxError};

/// Builds the outer body: `lead` (cleartext framing such as metadata or the response nonce),
/// then `head` (the encoded BHTTP head) sealed together with as much of the body as is
/// immediately available, then one sealed chunk per body frame, then the final chunk.
pub fn sealed_body<B, S>(lead: Bytes, head: BytesMut, body: B, sealer: S) -> Body
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    S: ChunkSealer,
{
    let state = Writer {
        lead: Some(lead),
        plain: head,
        body,
        sealer,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            let item = w.step().await;
            match item {
                // An empty frame (e.g. an empty body frame) carries nothing: keep going.
                Ok(bytes) if bytes.is_empty() && !w.done => continue,
                Ok(bytes) => return Some((Ok(Frame::data(bytes)), w)),
                Err(err) => {
                    w.done = true;
                    return Some((Err(err), w));
                }
            }
        }
    });
    boxed(StreamBody::new(stream))
}

struct Writer<B, S> {
    lead: Option<Bytes>,
    /// BHTTP plaintext waiting to be sealed.
    plain: BytesMut,
    body: B,
    sealer: S,
    done: bool,
}

impl<B, S> Writer<B, S>
where
    B: HttpBody<Data = Bytes> + Unpin + Send,
    B::Error: Into<BoxError>,
    S: ChunkSealer,
{
    async fn step(&mut self) -> Result<Bytes, BoxError> {
        let first = self.lead.is_some();
        let frame = if self.body.is_end_stream() {
            None
        } else if first {
            // Send the head at once (a streaming body may take long to produce its first
            // byte), but fold in the first frame when it is already there: small messages
            // then travel as a single sealed chunk. The body usually arrives together with
            // the head, and one scheduler pass lets its connection task hand it over.
            match self.ready_frame() {
                Some(frame) => frame,
                None => {
                    tokio::task::yield_now().await;
                    match self.ready_frame() {
                        Some(frame) => frame,
                        None => return self.emit(false, None),
                    }
                }
            }
        } else {
            self.body.frame().await.map(|r| r.map_err(Into::into))
        };
        match frame {
            None => self.emit(true, None),
            Some(Err(err)) => Err(err),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    bhttp::encode_data(&data, &mut self.plain);
                    let last = self.body.is_end_stream();
                    self.emit(last, None)
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    self.emit(true, trailers)
                }
            },
        }
    }

    fn ready_frame(&mut self) -> Option<Option<Result<Frame<Bytes>, BoxError>>> {
        self.body
            .frame()
            .now_or_never()
            .map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn emit(&mut self, last: bool, trailers: Option<HeaderMap>) -> Result<Bytes, BoxError> {
        if last {
            bhttp::encode_end_of_content(&mut self.plain);
            bhttp::encode_trailers(&trailers.unwrap_or_default(), &mut self.plain);
            self.done = true;
        }
        let plain = self.plain.split();
        let sealed = if last {
            // Upstream's reader only opens an empty final chunk (its writer never sends
            // anything else), so the content goes in a regular chunk first.
            let mut out = BytesMut::from(&self.sealer.seal_chunk(&plain)?[..]);
            out.extend_from_slice(&self.sealer.seal_final(&[])?);
            out.freeze()
        } else {
            self.sealer.seal_chunk(&plain)?
        };
        Ok(match self.lead.take() {
            Some(lead) if !lead.is_empty() => {
                let mut out = BytesMut::with_capacity(lead.len() + sealed.len());
                out.extend_from_slice(&lead);
                out.extend_from_slice(&sealed);
                out.freeze()
            }
            _ => sealed,
        })
    }
}
