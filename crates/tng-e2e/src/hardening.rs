//! Raw-socket helpers for the limit and replay tests: one exchange on a connection that stays
//! open (keep-alive), waiting for a server to close, and the server's HTTP/2 settings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::net::find;
use crate::RawResponse;

/// Opens a connection to `addr` (panics if refused).
pub fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Writes `request` and reads exactly one response (framed by `content-length` or chunked
/// coding, else up to EOF), leaving the connection open. Panics after `timeout`.
pub fn exchange(stream: &mut TcpStream, request: &[u8], timeout: Duration) -> RawResponse {
    stream.write_all(request).expect("write request");
    read_response(stream, timeout)
}

/// Reads one response from `stream`; panics when none completes within `timeout`.
pub fn read_response(stream: &mut TcpStream, timeout: Duration) -> RawResponse {
    let deadline = Instant::now() + timeout;
    let mut data = Vec::new();
    loop {
        if let Some(response) = complete_response(&data) {
            return response;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no complete response within {timeout:?}; got {:?}",
            String::from_utf8_lossy(&data)
        );
        stream.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 16384];
        match stream.read(&mut buf) {
            Ok(0) => return complete_response(&data).unwrap_or_else(|| eof_response(&data)),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}; got {:?}", String::from_utf8_lossy(&data)),
        }
    }
}

/// A response whose body runs to the end of the connection.
fn eof_response(data: &[u8]) -> RawResponse {
    let Some(split) = find(data, b"\r\n\r\n") else {
        panic!(
            "connection closed without a response head: {:?}",
            String::from_utf8_lossy(data)
        );
    };
    let (status, headers) = parse_head(&String::from_utf8_lossy(&data[..split]));
    RawResponse {
        status,
        headers,
        body: data[split + 4..].to_vec(),
    }
}

fn complete_response(data: &[u8]) -> Option<RawResponse> {
    let split = find(data, b"\r\n\r\n")?;
    let (status, headers) = parse_head(&String::from_utf8_lossy(&data[..split]));
    let rest = &data[split + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk_complete(rest)?
    } else {
        return None;
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk_complete(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return find(data, b"\r\n").map(|_| out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn parse_head(block: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = block.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response head {block:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
/// Panics if it is still open after `timeout`.
pub fn wait_closed(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut data = Vec::new();
    loop {
        let left = (start + timeout).saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "connection still open after {timeout:?}; got {:?}",
            String::from_utf8_lossy(&data)
        );
        stream.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => return (data, start.elapsed()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A reset is a close too.
            Err(_) => return (data, start.elapsed()),
        }
    }
}

/// Whether the server keeps `stream` open for `period` (no data, no close).
pub fn stays_open(stream: &mut TcpStream, period: Duration) -> bool {
    stream.set_read_timeout(Some(period)).expect("timeout");
    let mut buf = [0u8; 1];
    matches!(stream.read(&mut buf), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// Speaks the HTTP/2 (prior knowledge) preface to `addr` and returns the server's SETTINGS
/// as `(identifier, value)` pairs.
pub fn h2_server_settings(addr: &str) -> Vec<(u16, u32)> {
    let mut stream = connect(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    stream.write_all(&hello).expect("write preface");
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).expect("read frame header");
    assert_eq!(head[3], 4, "first server frame is not SETTINGS: {head:?}");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).expect("read settings");
    payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect()
}

/// The statuses of `paths`, requested as concurrent streams of one HTTP/2 (prior knowledge)
/// connection to `addr`, after one request (`warm_up`) has completed on it, so the client
/// knows the server's SETTINGS and never sends more streams than it allows (streams beyond the
/// limit wait in the client for one to end).
pub fn h2_concurrent_gets(addr: &str, warm_up: &str, paths: &[&str]) -> Vec<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let get = |path: &str| {
            let mut send = send.clone();
            let request = http::Request::get(format!("http://{addr}{path}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            async move {
                let response = send.send_request(request).await.expect("response");
                let status = response.status().as_u16();
                let mut body = response.into_body();
                while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                    frame.expect("body");
                }
                status
            }
        };
        assert_eq!(get(warm_up).await, 200, "warm-up request");
        futures_util::future::join_all(paths.iter().map(|p| get(p))).await
    })
}
