//! A recording TCP relay: put it between ingress and egress to see exactly what an on-path
//! observer (an L7 gateway, a packet sniffer) sees of the outer leg. It can also close a
//! connection the moment a request arrives on it, as a gateway closing a keep-alive
//! connection does when the request crosses its close.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Listens on 127.0.0.1:<port>, forwards every connection to `target`, and keeps a copy of
/// all bytes in each direction (concatenated over all connections). Stops on drop.
pub struct Relay {
    port: u16,
    upstream: Arc<Mutex<Vec<u8>>>,
    downstream: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<u32>>,
    cut_next: Arc<AtomicBool>,
    cuts: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("relay addr").port();
        let relay = Relay {
            port,
            upstream: Arc::default(),
            downstream: Arc::default(),
            connections: Arc::default(),
            cut_next: Arc::default(),
            cuts: Arc::default(),
            stop: Arc::default(),
        };
        let (up, down, count, stop) = (
            relay.upstream.clone(),
            relay.downstream.clone(),
            relay.connections.clone(),
            relay.stop.clone(),
        );
        let cut = Cut {
            armed: relay.cut_next.clone(),
            count: relay.cuts.clone(),
        };
        let target = target.to_string();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                *count.lock().unwrap() += 1;
                pump(&client, &server, up.clone(), Some(cut.clone()));
                pump(&server, &client, down.clone(), None);
            }
        });
        relay
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the ingress sent towards the egress so far.
    pub fn upstream(&self) -> Vec<u8> {
        self.upstream.lock().unwrap().clone()
    }

    /// Everything the egress sent back so far.
    pub fn downstream(&self) -> Vec<u8> {
        self.downstream.lock().unwrap().clone()
    }

    /// Number of TCP connections relayed.
    pub fn connections(&self) -> u32 {
        *self.connections.lock().unwrap()
    }

    /// The next bytes the ingress sends, on whichever connection, are dropped and that
    /// connection is closed in both directions (the egress never sees the request).
    pub fn cut_next_request(&self) {
        self.cut_next.store(true, Ordering::SeqCst);
    }

    /// Number of connections closed by [`Relay::cut_next_request`].
    pub fn cuts(&self) -> u32 {
        self.cuts.load(Ordering::SeqCst)
    }

    /// Forget what was captured so far (e.g. a warm-up request).
    pub fn clear(&self) {
        self.upstream.lock().unwrap().clear();
        self.downstream.lock().unwrap().clear();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[derive(Clone)]
struct Cut {
    armed: Arc<AtomicBool>,
    count: Arc<AtomicU32>,
}

fn pump(from: &TcpStream, to: &TcpStream, sink: Arc<Mutex<Vec<u8>>>, cut: Option<Cut>) {
    let (mut from, mut to) = (
        from.try_clone().expect("clone"),
        to.try_clone().expect("clone"),
    );
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(cut) = &cut {
                        if cut.armed.swap(false, Ordering::SeqCst) {
                            cut.count.fetch_add(1, Ordering::SeqCst);
                            let _ = from.shutdown(Shutdown::Both);
                            let _ = to.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// One HTTP/1.1 message cut out of a captured byte stream.
#[derive(Debug, Clone)]
pub struct CapturedMessage {
    /// Start line and headers, without the blank line.
    pub head: String,
    /// The body with any chunked transfer coding removed.
    pub body: Vec<u8>,
}

impl CapturedMessage {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Splits a captured HTTP/1.1 *request* stream (one direction of one or more keep-alive
/// connections, concatenated) into messages. Bodies framed by `content-length` or chunked
/// coding; a body without either is empty (requests). Stops at the first unparsable byte.
pub fn split_requests(mut data: &[u8]) -> Vec<CapturedMessage> {
    let mut out = Vec::new();
    while let Some(end) = crate::net::find(data, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        data = &data[end + 4..];
        let msg = CapturedMessage {
            head,
            body: Vec::new(),
        };
        let chunked = msg
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let Some(eol) = crate::net::find(data, b"\r\n") else {
                    return out;
                };
                let size_text = String::from_utf8_lossy(&data[..eol]).into_owned();
                let size_hex = size_text.split(';').next().unwrap_or("").trim();
                let Ok(size) = usize::from_str_radix(size_hex, 16) else {
                    return out;
                };
                data = &data[eol + 2..];
                if size == 0 {
                    // Skip (empty) trailers up to the final CRLF.
                    let Some(t) = crate::net::find(data, b"\r\n") else {
                        return out;
                    };
                    data = &data[t + 2..];
                    break;
                }
                if data.len() < size + 2 {
                    return out;
                }
                body.extend_from_slice(&data[..size]);
                data = &data[size + 2..];
            }
            body
        } else {
            let len: usize = msg
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if data.len() < len {
                return out;
            }
            let body = data[..len].to_vec();
            data = &data[len..];
            body
        };
        out.push(CapturedMessage { body, ..msg });
    }
    out
}
