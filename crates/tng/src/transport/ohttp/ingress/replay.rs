//! Keeps a bounded copy of a request body while it streams, so a request can be sent again,
//! transparently and under a fresh encapsulation: after the egress refused it with 422 (its
//! key rotated away), or, for idempotent methods, after the connection closed before any answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::http::body::BoxError;

/// Bodies up to this size can be replayed; larger ones fail with a clear 502 instead.
pub const REPLAY_LIMIT: usize = 64 * 1024;

struct Recording<B> {
    body: B,
    frames: Vec<Bytes>,
    len: usize,
    overflowed: bool,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// Set once a replay took over: the first attempt's outer body must stop.
    detached: bool,
    waker: Option<Waker>,
}

/// The live request body, recording what passes through.
pub struct RecordingBody<B> {
    shared: Arc<Mutex<Recording<B>>>,
}

/// Handle used to build a replay after the live body's attempt failed.
pub struct Recorder<B> {
    shared: Arc<Mutex<Recording<B>>>,
}

pub fn record<B>(body: B) -> (RecordingBody<B>, Recorder<B>) {
    let shared = Arc::new(Mutex::new(Recording {
        body,
        frames: Vec::new(),
        len: 0,
        overflowed: false,
        trailers: None,
        ended: false,
        detached: false,
        waker: None,
    }));
    (
        RecordingBody {
            shared: shared.clone(),
        },
        Recorder { shared },
    )
}

impl<B> Recording<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.len += data.len();
                    if self.len > REPLAY_LIMIT {
                        self.overflowed = true;
                        self.frames = Vec::new();
                    } else {
                        self.frames.push(data.clone());
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    self.trailers = Some(trailers.clone());
                }
            }
            Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B> HttpBody for RecordingBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut rec = lock(&self.shared);
        if rec.detached {
            return Poll::Ready(Some(Err("request body handed over to a retry".into())));
        }
        if rec.ended {
            return Poll::Ready(None);
        }
        rec.waker = Some(cx.waker().clone());
        rec.poll_inner(cx)
    }

    fn is_end_stream(&self) -> bool {
        let rec = lock(&self.shared);
        rec.ended || (!rec.detached && rec.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared).body.size_hint()
    }
}

#[derive(Debug)]
pub struct NotReplayable {
    pub limit: usize,
}

impl<B> Recorder<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Stops the live body, reads whatever the client has not sent yet (still bounded) and
    /// returns a body that yields the whole request body again. Each call gives a new copy.
    pub async fn replay(&self) -> Result<ReplayBody, NotReplayable> {
        {
            let mut rec = lock(&self.shared);
            rec.detached = true;
            // Wake the first attempt's writer so it notices and releases its connection.
            if let Some(waker) = rec.waker.take() {
                waker.wake();
            }
        }
        std::future::poll_fn(|cx| {
            let mut rec = lock(&self.shared);
            loop {
                if rec.overflowed {
                    return Poll::Ready(Err(NotReplayable {
                        limit: REPLAY_LIMIT,
                    }));
                }
                if rec.ended || rec.trailers.is_some() {
                    return Poll::Ready(Ok(ReplayBody {
                        frames: rec.frames.iter().cloned().collect(),
                        trailers: rec.trailers.clone(),
                    }));
                }
                match rec.poll_inner(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Err(_))) => {
                        return Poll::Ready(Err(NotReplayable {
                            limit: REPLAY_LIMIT,
                        }))
                    }
                    Poll::Ready(_) => {}
                }
            }
        })
        .await
    }
}

/// A recorded request body, played back.
pub struct ReplayBody {
    frames: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
}

impl HttpBody for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(data) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.trailers.is_none()
    }
}

/// Either the live first attempt or a replay.
pub enum AttemptBody<B> {
    Live(RecordingBody<B>),
    Replay(ReplayBody),
}

impl<B> HttpBody for AttemptBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            AttemptBody::Live(b) => Pin::new(b).poll_frame(cx),
            AttemptBody::Replay(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AttemptBody::Live(b) => b.is_end_stream(),
            AttemptBody::Replay(b) => b.is_end_stream(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type TestBody = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
    >;

    fn body(chunks: Vec<&'static [u8]>) -> TestBody {
        let frames: Vec<_> = chunks
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn drain(mut replay: ReplayBody) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(frame) = replay.frame().await {
            all.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        all
    }

    #[tokio::test]
    async fn replay_includes_what_the_first_attempt_never_read() {
        let (mut live, recorder) = record(body(vec![b"ab", b"cd", b"ef"]));
        let first = live.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "ab");
        assert_eq!(drain(recorder.replay().await.unwrap()).await, b"abcdef");
        // The first attempt is cut off once the replay took over.
        assert!(live.frame().await.unwrap().is_err());
        // A second re-send gets the whole body again.
        assert_eq!(drain(recorder.replay().await.unwrap()).await, b"abcdef");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_not_replayable() {
        static BIG: [u8; REPLAY_LIMIT] = [7; REPLAY_LIMIT];
        let (_live, recorder) = record(body(vec![&BIG, b"x"]));
        let err = recorder.replay().await.err().expect("must not replay");
        assert_eq!(err.limit, REPLAY_LIMIT);
    }
}
