//! The multiplexed rats-TLS framing driven by the other side's bytes: the HTTP/2 frames an
//! ingress sends our egress (`CONNECT` streams and anything else a client can send), or what
//! an egress answers our ingress's `CONNECT`. The TLS layer below is rustls' and is not what
//! this target explores; the frames arrive as if already decrypted.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tng::transport::rats_tls::egress::h2::{self as egress, Dial};
use tng::transport::rats_tls::ingress::h2 as ingress;
use tng_telemetry::{Endpoints, InstanceLabels, InstanceMetrics, Telemetry, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use crate::split::{Control, Splits};

/// How long a connection may take to end after its peer's bytes have. Nothing on these paths
/// waits for a timer once its input ended, so a run takes microseconds; reaching this means a
/// hang (libFuzzer's own timeout is longer).
const END_WITHIN: Duration = Duration::from_secs(5);

/// Input: the [`Control`] prefix, then the peer's bytes, cut into reads as it says.
/// Flags: bit 0 clear drives our egress (the bytes are an ingress's), set drives our ingress
/// (an egress's); bit 1 makes the egress's service refuse connections.
///
/// Property: whatever the bytes, the connection ends once they are exhausted; nothing panics.
pub fn connect_stream(data: &[u8]) {
    let Some((control, rest)) = Control::parse(data) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let peer = Peer::new(rest.to_vec(), control.splits);
    runtime.block_on(async {
        let ended = if control.flags & 1 == 0 {
            tokio::time::timeout(END_WITHIN, serve_egress(peer, control.flags & 2 != 0)).await
        } else {
            tokio::time::timeout(END_WITHIN, open_from_ingress(peer)).await
        };
        assert!(ended.is_ok(), "the connection outlived its peer's bytes");
    });
}

/// Our egress serving one connection over `io`, its service an echo (or refusing).
async fn serve_egress<T: tng::transport::AppStream>(io: T, refuse: bool) {
    // Held while serving: a dropped trigger reads as "shutting down".
    let (_trigger, shutdown) = tng::shutdown::channel();
    let metrics = metrics().clone();
    let unit = Arc::new(move || metrics.stream(&"fuzz", "service".to_string(), false));
    let limits = tng_config::Limits::default();
    egress::serve(io, EchoService { refuse }, &limits, (), shutdown, unit).await;
}

async fn open_from_ingress(peer: Peer) {
    let Ok((mut send, connection)) = ingress::handshake(peer).await else {
        return;
    };
    let driver = tokio::spawn(connection);
    if let Ok(upgraded) = ingress::open_stream(&mut send).await {
        let mut stream = hyper_util::rt::TokioIo::new(upgraded);
        let _ = stream.write_all(b"application bytes").await;
        let _ = stream.shutdown().await;
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    }
    drop(send);
    let _ = driver.await;
}

/// One set of metrics for every run: registering an instance per input would grow forever.
fn metrics() -> &'static InstanceMetrics {
    static METRICS: OnceLock<(Telemetry, InstanceMetrics)> = OnceLock::new();
    &METRICS
        .get_or_init(|| {
            let telemetry = Telemetry::new(&Default::default(), &Default::default(), "fuzz")
                .expect("telemetry without exporters");
            let labels = InstanceLabels {
                mode: "mapping".into(),
                transport: Transport::RatsTls,
                endpoints: Endpoints::InOut {
                    listen: "127.0.0.1:1".into(),
                    upstream: "127.0.0.1:2".into(),
                },
            };
            let metrics = telemetry.egress(0, labels);
            (telemetry, metrics)
        })
        .1
}

/// The service behind the egress: echoes each stream, or refuses every connection.
struct EchoService {
    refuse: bool,
}

impl std::fmt::Display for EchoService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("echo service")
    }
}

impl Dial for EchoService {
    type Stream = DuplexStream;
    fn dial(&self) -> impl std::future::Future<Output = io::Result<DuplexStream>> + Send + 'static {
        let refuse = self.refuse;
        async move {
            if refuse {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            let (ours, mut service) = tokio::io::duplex(4096);
            tokio::spawn(async move {
                let (mut from, mut to) = tokio::io::split(&mut service);
                let _ = tokio::io::copy(&mut from, &mut to).await;
            });
            Ok(ours)
        }
    }
}

/// The other side of the connection: reads replay the input in the chosen cuts, then end;
/// writes are accepted and dropped.
struct Peer {
    input: Vec<u8>,
    at: usize,
    splits: Splits,
}

impl Peer {
    fn new(input: Vec<u8>, splits: Splits) -> Peer {
        Peer {
            input,
            at: 0,
            splits,
        }
    }
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let remaining = this.input.len() - this.at;
        if remaining > 0 {
            let len = this.splits.next_len(remaining).min(buf.remaining());
            buf.put_slice(&this.input[this.at..this.at + len]);
            this.at += len;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What one exchange between our ingress and our egress looked like on the wire (after TLS):
/// the bytes each side read. The seed corpus is made of these.
pub struct Session {
    pub name: &'static str,
    /// What the egress read: the ingress's frames.
    pub to_egress: Vec<u8>,
    /// What the ingress read: the egress's frames.
    pub to_ingress: Vec<u8>,
    /// The egress's service refused connections in this session.
    pub refused: bool,
}

/// Runs our ingress against our egress over an in-memory connection, recording both
/// directions: a `CONNECT` stream with data and half-closes, two streams on one connection,
/// a `GET` (refused with `400`), and a `CONNECT` whose service is down (`502`).
pub fn recorded_sessions() -> Vec<Session> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let scripts: [(&'static str, Script, bool); 4] = [
        ("connect-echo", Script::Connect(1), false),
        ("connect-two-streams", Script::Connect(2), false),
        ("get-not-connect", Script::Get, false),
        ("connect-service-down", Script::Connect(1), true),
    ];
    scripts
        .into_iter()
        .map(|(name, script, refused)| {
            let (to_egress, to_ingress) = runtime.block_on(record(script, refused));
            Session {
                name,
                to_egress,
                to_ingress,
                refused,
            }
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Script {
    Connect(usize),
    Get,
}

async fn record(script: Script, refused: bool) -> (Vec<u8>, Vec<u8>) {
    let (ingress_end, egress_end) = tokio::io::duplex(1 << 20);
    let (ingress_end, to_ingress) = Tap::new(ingress_end);
    let (egress_end, to_egress) = Tap::new(egress_end);
    let server = tokio::spawn(serve_egress(egress_end, refused));
    let (mut send, connection) = ingress::handshake(ingress_end).await.expect("handshake");
    let driver = tokio::spawn(connection);
    match script {
        Script::Connect(streams) => {
            for i in 0..streams {
                let Ok(upgraded) = ingress::open_stream(&mut send).await else {
                    continue;
                };
                let mut stream = hyper_util::rt::TokioIo::new(upgraded);
                let message = format!("stream {i}: application bytes\n");
                stream.write_all(message.as_bytes()).await.expect("write");
                stream.shutdown().await.expect("half-close");
                let mut echoed = Vec::new();
                stream.read_to_end(&mut echoed).await.expect("read");
                assert_eq!(echoed, message.as_bytes());
            }
        }
        Script::Get => {
            let request = http::Request::get("https://tng.internal/")
                .body(http_body_util::Empty::new())
                .expect("request");
            let response = send.send_request(request).await.expect("response");
            assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
        }
    }
    drop(send);
    let _ = driver.await;
    let _ = server.await;
    let take = |log: Recording| std::mem::take(&mut *log.lock().unwrap());
    (take(to_egress), take(to_ingress))
}

/// Everything one side of a recorded session read.
type Recording = Arc<std::sync::Mutex<Vec<u8>>>;

/// Passes IO through and keeps a copy of everything read.
struct Tap<T> {
    inner: T,
    read: Recording,
}

impl<T> Tap<T> {
    fn new(inner: T) -> (Tap<T>, Recording) {
        let read = Recording::default();
        (
            Tap {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read
            .lock()
            .unwrap()
            .extend_from_slice(&buf.filled()[before..]);
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
