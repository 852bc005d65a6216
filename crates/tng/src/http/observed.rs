//! Bodies that report what flowed through them, for metrics and the access log: the count of
//! data bytes, and (for a response) one call when the body ended — completely, with an error,
//! or because the peer went away and the body was dropped unfinished. Counting happens frame by
//! frame, so byte counters move as bytes flow and nothing is buffered.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tng_telemetry::InstanceMetrics;

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every byte was sent.
    Complete,
    /// The body failed (the service broke off, a decryption error).
    Failed,
    /// Dropped before its end: the client went away.
    Abandoned,
}

/// A request body whose data bytes are added to `seen` (and to `rx` of an instance's metrics).
pub struct Counted<B> {
    inner: B,
    seen: Arc<AtomicU64>,
    rx: Option<InstanceMetrics>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, seen: Arc<AtomicU64>, rx: Option<InstanceMetrics>) -> Self {
        Self { inner, seen, rx }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                self.seen.fetch_add(len, Relaxed);
                if let Some(metrics) = &self.rx {
                    metrics.rx(len);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type OnEnd = Box<dyn FnOnce(End, u64) + Send>;

/// A response body that counts its data bytes (into `tx` of an instance's metrics, if given)
/// and calls `on_end` exactly once with how it ended and how many bytes it carried.
pub struct Finished<B> {
    inner: B,
    bytes: u64,
    /// The length the response head declared: hyper stops polling once it is sent, even
    /// when the body itself cannot know it ended (a stream decrypted chunk by chunk).
    declared: Option<u64>,
    tx: Option<InstanceMetrics>,
    on_end: Option<OnEnd>,
}

impl<B> Finished<B> {
    pub fn new(
        inner: B,
        tx: Option<InstanceMetrics>,
        on_end: impl FnOnce(End, u64) + Send + 'static,
    ) -> Self {
        Self {
            inner,
            bytes: 0,
            declared: None,
            tx,
            on_end: Some(Box::new(on_end)),
        }
    }

    /// The `Content-Length` the response head declares, if any.
    pub fn declared_length(mut self, declared: Option<u64>) -> Self {
        self.declared = declared;
        self
    }

    fn reached_declared(&self) -> bool {
        self.declared == Some(self.bytes)
    }

    fn end(&mut self, how: End) {
        if let Some(on_end) = self.on_end.take() {
            on_end(how, self.bytes);
        }
    }
}

impl<B> HttpBody for Finished<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    self.bytes += len;
                    if let Some(metrics) = &self.tx {
                        metrics.tx(len);
                    }
                }
                // hyper stops polling a body that says it ended (a known length reached), so
                // the last data frame may be the last call we get.
                if self.inner.is_end_stream() || self.reached_declared() {
                    self.end(End::Complete);
                }
            }
            Poll::Ready(Some(Err(_))) => self.end(End::Failed),
            Poll::Ready(None) => self.end(End::Complete),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        // hyper does not poll a body it knows is empty (HEAD, 204, 304, end-of-stream known up
        // front): nothing was lost there, so such a drop counts as complete.
        let how = if (self.bytes == 0 && self.on_end.is_some()) || self.reached_declared() {
            End::Complete
        } else {
            End::Abandoned
        };
        self.end(how);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::sync::Mutex;

    /// Reads a body frame by frame (the data path never collects whole bodies).
    async fn read_all<B>(mut body: B) -> Vec<u8>
    where
        B: HttpBody<Data = Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.unwrap().data_ref() {
                out.extend_from_slice(data);
            }
        }
        out
    }

    #[tokio::test]
    async fn finished_reports_bytes_once_at_the_end() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let body = Finished::new(
            Full::new(Bytes::from_static(b"hello")),
            None,
            move |how, n| record.lock().unwrap().push((how, n)),
        );
        assert_eq!(read_all(body).await, b"hello");
        assert_eq!(*seen.lock().unwrap(), vec![(End::Complete, 5)]);
    }

    #[tokio::test]
    async fn finished_dropped_midway_is_abandoned() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let frames = futures_util::stream::iter(vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b"def"))),
        ]);
        let mut body = Finished::new(StreamBody::new(frames), None, move |how, n| {
            record.lock().unwrap().push((how, n))
        });
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().unwrap().as_ref(), b"abc");
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![(End::Abandoned, 3)]);
    }

    #[tokio::test]
    async fn a_body_dropped_at_its_declared_length_is_complete() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        // A stream that cannot tell it ended, as hyper sees a decrypted response.
        let frames = futures_util::stream::iter(vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"0123"))),
            Ok(Frame::data(Bytes::from_static(b"456789"))),
        ]);
        let mut body = Finished::new(StreamBody::new(frames), None, move |how, n| {
            record.lock().unwrap().push((how, n))
        })
        .declared_length(Some(10));
        body.frame().await.unwrap().unwrap();
        assert!(seen.lock().unwrap().is_empty());
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![(End::Complete, 10)]);
    }

    #[tokio::test]
    async fn counted_adds_every_data_byte() {
        let seen = Arc::new(AtomicU64::new(0));
        let body = Counted::new(
            Full::new(Bytes::from_static(b"0123456789")),
            seen.clone(),
            None,
        );
        read_all(body).await;
        assert_eq!(seen.load(Relaxed), 10);
    }
}
