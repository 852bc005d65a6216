//! `direct_forward` (egress): with rules, the first request of each connection is sniffed;
//! when it is plain HTTP and its path matches a rule, the whole connection bypasses the tunnel
//! and goes to the service untouched (health checks and other traffic that must not be
//! tunnelled). Everything else, a TLS ClientHello included, goes to the transport.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tracing::{debug, info};

/// Upstream sniffs at most this much of the first request head.
const SNIFF_LIMIT: usize = 4096;
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Where a connection goes; either way the bytes read while deciding are replayed first.
pub enum Route<S> {
    Tunnel(Rewind<S>),
    Direct(Rewind<S>),
}

/// Decides a connection's route; `None` when it closed while being sniffed. `stream` is the
/// accepted socket, or what a TLS listener decrypted of it.
pub async fn route<S: AsyncRead + Unpin>(
    mut stream: S,
    rules: std::sync::Arc<Vec<regex::Regex>>,
) -> Option<Route<S>> {
    if rules.is_empty() {
        return Some(Route::Tunnel(Rewind::new(Bytes::new(), stream)));
    }
    let mut head = BytesMut::with_capacity(1024);
    let sniffed = tokio::time::timeout(SNIFF_TIMEOUT, sniff_head(&mut stream, &mut head)).await;
    if let Ok(Err(err)) = sniffed {
        debug!("connection closed while sniffing: {err}");
        return None;
    }
    let head = head.freeze();
    let direct = match first_request_path(&head) {
        Some(path) if rules.iter().any(|r| r.is_match(path)) => {
            info!(%path, "direct_forward rule matched; forwarding the connection in plaintext");
            true
        }
        _ => false,
    };
    let stream = Rewind::new(head, stream);
    Some(if direct {
        Route::Direct(stream)
    } else {
        Route::Tunnel(stream)
    })
}

async fn sniff_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> io::Result<()> {
    while buf.len() < SNIFF_LIMIT
        && !contains(buf, b"\r\n\r\n")
        && !buf.starts_with(H2_PREFACE)
        && !cannot_be_http(buf)
    {
        let n = stream.read_buf(buf).await?;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Whether what was read so far cannot start an HTTP/1 request line, whose method is a
/// token (RFC 9110 §5.6.2). A TLS ClientHello (record type 0x16) fails at its first byte:
/// its sender then waits for the server, so sniffing on for a request head would stall
/// the handshake until the sniff timeout.
fn cannot_be_http(buf: &[u8]) -> bool {
    buf.first()
        .is_some_and(|&b| !(b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The path (without query) of an HTTP/1 request line, origin- or absolute-form.
fn first_request_path(head: &[u8]) -> Option<&str> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let (_method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            rest.find('/').map(|j| &rest[j..]).unwrap_or("/")
        }
        None => target,
    };
    Some(path.split('?').next().unwrap_or(path))
}

/// A stream that first replays bytes already read from it.
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::first_request_path;

    #[test]
    fn a_tls_record_is_not_sniffed_further() {
        assert!(super::cannot_be_http(&[0x16, 0x03, 0x01, 0x00, 0xc8]));
        assert!(!super::cannot_be_http(b"GET /"));
        assert!(!super::cannot_be_http(b"PRI * HTTP/2.0"));
        assert!(!super::cannot_be_http(b""));
    }

    #[test]
    fn request_line_paths() {
        assert_eq!(
            first_request_path(b"GET /healthz?x=1 HTTP/1.1\r\n"),
            Some("/healthz")
        );
        assert_eq!(
            first_request_path(b"GET http://h:1/a/b?q HTTP/1.1\r\n"),
            Some("/a/b")
        );
        assert_eq!(
            first_request_path(b"GET http://h:1 HTTP/1.1\r\n"),
            Some("/")
        );
        assert_eq!(first_request_path(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(first_request_path(b"GET /partial"), None);
    }
}
