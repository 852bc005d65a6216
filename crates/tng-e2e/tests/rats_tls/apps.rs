//! The applications at both ends of the tunnel, beside the devkit HTTP backend: a TCP echo
//! service speaking no HTTP at all, and the clients that drive the checks.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How long a client waits for a byte before it calls the tunnel stuck.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A TCP echo service on 127.0.0.1: every byte read is written back at once; the client's
/// EOF is answered with our own EOF (a half-close travels back as a half-close). It counts
/// the connections and bytes it received, so a failure test can prove nothing arrived.
pub struct EchoServer {
    port: u16,
    connections: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
        let port = listener.local_addr().expect("echo addr").port();
        let connections = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (count, bytes) = (connections.clone(), received.clone());
        // The thread lives as long as the test binary: the listener is never closed, which
        // costs one idle thread per test and keeps the port from being reused meanwhile.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let bytes = bytes.clone();
                thread::spawn(move || {
                    let Ok(mut out) = stream.try_clone() else {
                        return;
                    };
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                bytes.fetch_add(n as u64, Ordering::SeqCst);
                                if out.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                            Err(_) => return,
                        }
                    }
                    let _ = out.shutdown(Shutdown::Write);
                });
            }
        });
        EchoServer {
            port,
            connections,
            received,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Bytes received so far, over all connections.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

/// Deterministic bytes covering every value (xorshift64).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Sends `data` over `stream` while reading, half-closes after the last byte and reads until
/// the peer's EOF: what came back. Errors are returned as text (the caller adds context).
pub fn echo_exchange(mut stream: TcpStream, data: &[u8]) -> Result<Vec<u8>, String> {
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let data = data.to_vec();
    // Writing and reading at once: an echo of several MiB would otherwise fill both ways'
    // buffers and stall.
    let sender = thread::spawn(move || -> Result<(), String> {
        for chunk in data.chunks(50_000) {
            writer.write_all(chunk).map_err(|e| format!("write: {e}"))?;
        }
        writer
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("half-close: {e}"))
    });
    let mut back = Vec::new();
    let read = stream.read_to_end(&mut back);
    let sent = sender.join().map_err(|_| "writer panicked".to_string())?;
    read.map_err(|e| format!("read after {} bytes: {e}", back.len()))?;
    sent?;
    Ok(back)
}

/// Connects to `127.0.0.1:port` and runs [`echo_exchange`].
pub fn echo_via(port: u16, data: &[u8]) -> Result<Vec<u8>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    echo_exchange(stream, data)
}

/// What an application connection got back when the tunnel behind it failed: its bytes
/// (expected none), and whether it ended by EOF or by a reset.
pub fn refused_exchange(port: u16, data: &[u8]) -> (Vec<u8>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the ingress");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    // The ingress may already have closed: a failed write is part of the outcome.
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);
    let mut back = Vec::new();
    let end = match stream.read_to_end(&mut back) {
        Ok(_) => "eof".to_string(),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => "reset".to_string(),
        Err(e) => panic!("the application connection neither closed nor reset: {e}"),
    };
    (back, end)
}
