//! The ingress's half of the multiplexed framing on one HTTP/2 connection: the handshake with
//! our window settings and the `CONNECT` exchange that turns a stream into an application
//! connection. Generic over the connection's IO, so the fuzz target drives it with bytes an
//! egress could send; the pool decides which connection a stream goes to.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http2::{Connection, SendRequest};
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

/// Flow-control windows we grant the egress: large enough for bulk transfers at loopback
/// speed, small enough that a slow application bounds what is buffered for it.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
const MAX_FRAME: u32 = 256 * 1024;

pub type Sender = SendRequest<Empty<Bytes>>;

/// The client side of an HTTP/2 connection over `io` (an attested TLS stream in production).
/// The returned connection future must be polled (spawned) for any stream to make progress.
pub async fn handshake<T>(
    io: T,
) -> hyper::Result<(Sender, Connection<TokioIo<T>, Empty<Bytes>, TokioExecutor>)>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .handshake(TokioIo::new(io))
        .await
}

/// Why a `CONNECT` stream did not open.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The request never got an answer (the connection failed or refused the stream).
    #[error("{0}")]
    Send(hyper::Error),
    #[error("the egress answered CONNECT with {0}")]
    Refused(StatusCode),
    #[error("{0}")]
    Upgrade(hyper::Error),
}

impl StreamError {
    /// A failure of the connection rather than of this request: worth one retry elsewhere.
    pub fn connection_failed(&self) -> bool {
        matches!(self, StreamError::Send(err) if !err.is_user())
    }
}

/// Opens one `CONNECT` stream and waits for the egress's `200`; anything else refuses it.
pub async fn open_stream(send: &mut Sender) -> Result<Upgraded, StreamError> {
    let request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("https://{}/", super::super::H2_AUTHORITY))
        .body(Empty::new())
        .expect("a CONNECT request to a constant authority is valid");
    let response = send
        .send_request(request)
        .await
        .map_err(StreamError::Send)?;
    if response.status() != StatusCode::OK {
        return Err(StreamError::Refused(response.status()));
    }
    hyper::upgrade::on(response)
        .await
        .map_err(StreamError::Upgrade)
}
