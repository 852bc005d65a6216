//! Ports, curl, and a raw-socket HTTP/1.1 client for hand-crafted requests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free loopback port (TCP and UDP) for a test to hand to a process.
///
/// Picked below the kernel's ephemeral range (32768–60999 by default): a port the kernel chose
/// for `bind(0)` could be handed out again for any outgoing connection before the process that
/// was meant to listen on it starts, which once failed a run ("Address already in use").
/// Within one test binary a counter keeps parallel tests apart; the start depends on the pid,
/// so two test binaries begin at different places.
pub fn free_port() -> u16 {
    const BASE: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (BASE + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {BASE}..{}", BASE + SPAN);
}

/// Runs the system curl with `-sS --max-time 120` prepended (a later `-m` in `args` wins).
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "120"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (is it installed?)")
}

/// A parsed HTTP response (from curl or from [`raw_http`]).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in wire order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Runs curl and returns status, headers and body of the final response. Panics if curl
/// itself fails (connection refused, timeout), printing its stderr.
pub fn curl_status(args: &[&str]) -> RawResponse {
    try_curl_status(args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`curl_status`] that reports a failed transfer (curl's exit status and stderr) as `Err`
/// instead of panicking, for callers that tolerate a peer they do not own failing.
pub fn try_curl_status(args: &[&str]) -> Result<RawResponse, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-D", "/dev/stderr", "-o", "-"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("curl {args:?} failed ({}): {stderr}", out.status));
    }
    // Skip interim (1xx) blocks: the final response's header block is the last one.
    let blocks: Vec<&str> = stderr
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .collect();
    let block = blocks
        .last()
        .ok_or_else(|| format!("no response head from curl: {stderr}"))?;
    let (status, headers) = parse_head(block);
    Ok(RawResponse {
        status,
        headers,
        body: out.stdout,
    })
}

/// `GET url` via curl with a 5 s limit: `(status, body)`; status 0 when nothing answered.
pub fn http_get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Polls `url` until it answers 200 or `timeout` passes; returns whether it did.
pub fn wait_http_ok(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if http_get(url).0 == 200 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        crate::pause(Duration::from_millis(50));
    }
}

/// Sends `request` verbatim over a new TCP connection to `addr` and reads the response until
/// the server closes the connection (send `Connection: close`) or 15 s pass. Write errors
/// are ignored: a server may answer and close before reading a malformed body.
pub fn raw_http(addr: &str, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("set timeout");
    let _ = stream.write_all(request);
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if data.is_empty() => panic!("read from {addr}: {e}"),
            Err(_) => break,
        }
    }
    let split = find(&data, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&data)));
    let head = String::from_utf8_lossy(&data[..split]).into_owned();
    let (status, headers) = parse_head(&head);
    let rest = &data[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

/// A complete HTTP/1.1 POST with `Content-Length` and `Connection: close`.
pub fn build_post(path: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn parse_head(block: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = block.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Fails unless tcpdump's exit statistics (in its log) say the kernel dropped no packet: a
/// capture with holes cannot prove that something never crossed the wire.
pub fn assert_capture_complete(tcpdump_log: &str) {
    let dropped = tcpdump_log
        .lines()
        .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
        .unwrap_or_else(|| panic!("tcpdump printed no statistics:\n{tcpdump_log}"));
    assert_eq!(
        dropped.trim(),
        "0",
        "the capture is incomplete:\n{tcpdump_log}"
    );
}
