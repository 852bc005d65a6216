//! The slow-body guard (`limits.body_read_timeout`): every request body a listener hands to
//! its handler is a [`RequestBody`], which fails with [`BodyReadTimeout`] when the gateway has
//! waited that long for its next bytes. The wait only counts while someone is reading the
//! body, so a gateway holding back because its upstream is slow never blames the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::http::body::BoxError;

/// A request body as every handler receives it.
pub type RequestBody = TimedBody<Incoming>;

/// The error a timed-out body yields (the reader's error chain carries it).
#[derive(Debug)]
pub struct BodyReadTimeout(pub Duration);

impl std::fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent no request body bytes for {}s (limits.body_read_timeout)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyReadTimeout {}

pub struct TimedBody<B> {
    inner: B,
    limit: Option<Duration>,
    /// Allocated at the first wait and re-armed for later ones (a streaming upload waits
    /// once per chunk; one timer per body, not one per wait).
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` runs for the current wait: set when a read found nothing, cleared by
    /// the next frame.
    waiting: bool,
    /// Set when the limit fired, so the server can answer 408 whatever the handler made of it.
    fired: Arc<AtomicBool>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, limit: Option<Duration>, fired: Arc<AtomicBool>) -> Self {
        TimedBody {
            inner,
            limit,
            timer: None,
            waiting: false,
            fired,
        }
    }
}

impl<B> HttpBody for TimedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(limit) = this.limit else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if !this.waiting {
                    this.waiting = true;
                    timer.as_mut().reset(tokio::time::Instant::now() + limit);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.waiting = false;
                        this.fired.store(true, Ordering::SeqCst);
                        Poll::Ready(Some(Err(Box::new(BodyReadTimeout(limit)))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::Stream;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    type Item = Result<Frame<Bytes>, std::io::Error>;

    fn channel_body() -> (
        mpsc::Sender<Item>,
        StreamBody<impl Stream<Item = Item> + Unpin>,
    ) {
        let (tx, mut rx) = mpsc::channel(4);
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (tx, StreamBody::new(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_silent_wait_of_the_limit() {
        let (tx, inner) = channel_body();
        let fired = Arc::new(AtomicBool::new(false));
        let mut body = TimedBody::new(inner, Some(Duration::from_secs(10)), fired.clone());
        // Bytes every 6 s: each wait is shorter than the limit, however long the whole body.
        for _ in 0..3 {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .unwrap();
            });
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "x");
        }
        assert!(!fired.load(Ordering::SeqCst));
        let started = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(err.downcast_ref::<BodyReadTimeout>().is_some(), "{err}");
        assert!(fired.load(Ordering::SeqCst));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_waits_for_ever_and_the_end_passes_through() {
        let (tx, inner) = channel_body();
        let fired = Arc::new(AtomicBool::new(false));
        let mut body = TimedBody::new(inner, None, fired.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(100_000)).await;
            drop(tx);
        });
        assert!(body.frame().await.is_none());
        assert!(!fired.load(Ordering::SeqCst));
    }
}
