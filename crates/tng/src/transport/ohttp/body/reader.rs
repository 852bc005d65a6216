//! Opens a chunked-OHTTP body and decodes the BHTTP message inside it, event by event.

use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tng_ohttp::bhttp::{self, BhttpError, Event};
use tng_ohttp::chunked::OhttpError;

use super::ChunkOpener;
use crate::http::body::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the tunnel body failed: {0}")]
    Body(BoxError),
    #[error("OHTTP: {0}")]
    Ohttp(#[from] OhttpError),
    #[error("BHTTP: {0}")]
    Bhttp(#[from] BhttpError),
    #[error("BHTTP: message truncated")]
    Truncated,
    #[error("BHTTP: more content than its Content-Length")]
    ContentTooLong,
    #[error("BHTTP: less content than its Content-Length")]
    ContentTooShort,
}

/// Reads sealed chunks from `body`, opens them and yields the inner message's events.
///
/// The end of the inner message is only reported once the OHTTP final chunk has been opened:
/// the final chunk is what authenticates that nothing was cut off.
pub struct MessageReader<B, O> {
    body: B,
    opener: O,
    bhttp: bhttp::Decoder,
    body_done: bool,
    opened_final: bool,
    saw_end: bool,
    reported_end: bool,
}

impl<B, O> MessageReader<B, O>
where
    B: HttpBody<Data = Bytes> + Unpin + Send,
    B::Error: Into<BoxError>,
    O: ChunkOpener,
{
    /// `initial` is ciphertext already read from `body` while parsing what precedes it.
    pub fn new(body: B, opener: O, initial: &[u8]) -> Result<Self, ReadError> {
        Self::with_limits(body, opener, initial, bhttp::Limits::default())
    }

    /// Like [`MessageReader::new`], with the inner message's header sections bounded by `limits`.
    pub fn with_limits(
        body: B,
        mut opener: O,
        initial: &[u8],
        limits: bhttp::Limits,
    ) -> Result<Self, ReadError> {
        opener.push(initial)?;
        Ok(Self {
            body,
            opener,
            bhttp: bhttp::Decoder::new(limits),
            body_done: false,
            opened_final: false,
            saw_end: false,
            reported_end: false,
        })
    }

    pub async fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        loop {
            if !self.saw_end {
                match self.bhttp.next()? {
                    Some(Event::End) => {
                        self.saw_end = true;
                        // Whatever the decoder holds past the end is padding: it checks that
                        // it is all zeros (RFC 9292 §3.8) on the next call.
                        self.bhttp.next()?;
                    }
                    Some(event) => return Ok(Some(event)),
                    None if self.opened_final => return Err(ReadError::Truncated),
                    None => {}
                }
            }
            if self.saw_end && self.opened_final {
                if self.reported_end {
                    return Ok(None);
                }
                self.reported_end = true;
                return Ok(Some(Event::End));
            }
            if let Some(plaintext) = self.opener.next_chunk()? {
                // Bytes after the end of the BHTTP message are padding, which must be zeros
                // (RFC 9292 §3.8): a message with anything else there is malformed.
                if self.saw_end {
                    check_padding(&plaintext)?;
                } else {
                    self.bhttp.push(plaintext);
                }
                continue;
            }
            if self.body_done {
                let last = self.opener.finish()?;
                if self.saw_end {
                    check_padding(&last)?;
                } else {
                    self.bhttp.push(last);
                    self.bhttp.finish();
                }
                self.opened_final = true;
                continue;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.opener.push(&data)?;
                    }
                }
                Some(Err(err)) => return Err(ReadError::Body(err.into())),
                None => self.body_done = true,
            }
        }
    }
}

fn check_padding(bytes: &[u8]) -> Result<(), ReadError> {
    if bytes.iter().any(|b| *b != 0) {
        return Err(ReadError::Bhttp(BhttpError::InvalidPadding));
    }
    Ok(())
}

/// Reads raw bytes from a body until `want` bytes are buffered (or the body ends).
pub async fn read_at_least<B>(
    body: &mut B,
    buf: &mut bytes::BytesMut,
    want: usize,
) -> Result<bool, BoxError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    while buf.len() < want {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(err)) => return Err(err.into()),
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// The plaintext body of an opened message, as a hyper body.
///
/// With a known `content_length`, hyper stops polling once that many bytes have passed, so the
/// frame that completes the length is held back until the reader has verified the OHTTP final
/// chunk: a truncated tunnel stream then fails the body instead of going unnoticed. Without a
/// length the stream only ends at the verified end anyway. `first` is content already read.
/// `exact` also fails a body that ends before `content_length` (requests: a response to HEAD,
/// or a 304, declares a length it does not carry).
pub fn plaintext_body<B, O>(
    reader: MessageReader<B, O>,
    content_length: Option<u64>,
    exact: bool,
    first: Option<Bytes>,
    on_error: impl Fn(&ReadError) + Send + Sync + 'static,
) -> crate::http::body::Body
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    O: ChunkOpener,
{
    use http_body::Frame;
    struct State<B, O> {
        reader: MessageReader<B, O>,
        first: Option<Bytes>,
        remaining: Option<u64>,
        exact: bool,
    }
    let state = State {
        reader,
        first,
        remaining: content_length,
        exact,
    };
    let on_error = std::sync::Arc::new(on_error);
    let stream = futures_util::stream::unfold(Some(state), move |state| {
        let on_error = on_error.clone();
        async move {
            let mut s = state?;
            let event = match s.first.take() {
                Some(data) => Ok(Some(Event::Data(data))),
                None => s.reader.next_event().await,
            };
            let result = match event {
                Ok(Some(Event::Data(data))) => match s.remaining {
                    // Never pass on bytes the declared length does not cover: the peer
                    // after us would take them as the start of the next message.
                    Some(r) if data.len() as u64 > r => Err(ReadError::ContentTooLong),
                    Some(r) if data.len() as u64 == r => {
                        s.remaining = Some(0);
                        verified_end(&mut s.reader)
                            .await
                            .map(|()| Frame::data(data))
                    }
                    Some(r) => {
                        s.remaining = Some(r - data.len() as u64);
                        Ok(Frame::data(data))
                    }
                    None => Ok(Frame::data(data)),
                },
                Ok(Some(Event::Trailers(trailers))) => Ok(Frame::trailers(trailers)),
                Ok(_) if s.exact && s.remaining.is_some_and(|r| r > 0) => {
                    Err(ReadError::ContentTooShort)
                }
                Ok(_) => return None,
                Err(err) => Err(err),
            };
            match result {
                Ok(frame) => Some((Ok(frame), Some(s))),
                Err(err) => {
                    on_error(&err);
                    Some((Err::<_, BoxError>(err.into()), None))
                }
            }
        }
    });
    crate::http::body::boxed(http_body_util::StreamBody::new(stream))
}

/// Reads on until the end of the message is authenticated; content past the declared length
/// is a framing error.
async fn verified_end<B, O>(reader: &mut MessageReader<B, O>) -> Result<(), ReadError>
where
    B: HttpBody<Data = Bytes> + Unpin + Send,
    B::Error: Into<BoxError>,
    O: ChunkOpener,
{
    loop {
        match reader.next_event().await? {
            Some(Event::Data(data)) if data.is_empty() => {}
            Some(Event::Data(_)) => return Err(ReadError::ContentTooLong),
            Some(Event::End) | None => return Ok(()),
            Some(_) => {}
        }
    }
}
