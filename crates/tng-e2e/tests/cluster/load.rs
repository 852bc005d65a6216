//! A load client living in the client namespace: a few worker threads sending `POST
//! /echo?id=…` through the ingress, some over one keep-alive connection, some on a new
//! connection per request, and recording the outcome of every single request (byte-exact
//! echo or the reason it failed, with start and end instants).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tng_e2e::client::H1Conn;

use super::ns;

/// One request and what became of it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `w<worker>r<seq>`: also the `id` query parameter, so the egress logs name it.
    pub id: String,
    pub start: Instant,
    pub end: Instant,
    /// `None`: 200 with exactly the bytes sent.
    pub error: Option<String>,
}

impl Outcome {
    /// Whether the request was under way at some instant of `[from, to]`.
    pub fn in_flight_during(&self, from: Instant, to: Instant) -> bool {
        self.start <= to && self.end >= from
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    pub started: Instant,
}

/// How a worker uses connections.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// One connection for up to 40 requests, then a new one (and a new one after an error).
    KeepAlive,
    /// `connection: close`, a new connection for every request.
    NewConnection,
}

impl Load {
    /// Starts `workers` workers (even: keep-alive, odd: a connection per request) inside
    /// namespace `ns_name`, sending to `target` (`IP:PORT`), each pausing `gap` between
    /// requests.
    pub fn start(ns_name: &str, target: &str, workers: usize, gap: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let handles = (0..workers)
            .map(|w| {
                let style = if w % 2 == 0 {
                    Style::KeepAlive
                } else {
                    Style::NewConnection
                };
                let (ns_name, target) = (ns_name.to_string(), target.to_string());
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    ns::enter(&ns_name);
                    ns::runtime().block_on(worker(w, style, target, gap, stop, ok, failed))
                })
            })
            .collect();
        println!("[e2e] load: {workers} workers -> {target} in {ns_name}");
        Load {
            stop,
            workers: handles,
            ok,
            failed,
            started: Instant::now(),
        }
    }

    /// Requests answered correctly so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Requests failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests than now have succeeded (panics after `limit`).
    pub fn wait_more_ok(&self, n: u64, limit: Duration) {
        let target = self.ok() + n;
        let deadline = Instant::now() + limit;
        while self.ok() < target {
            assert!(
                Instant::now() < deadline,
                "load: fewer than {n} successful requests within {limit:?} (ok {}, failed {})",
                self.ok(),
                self.failed()
            );
            tng_e2e::pause(Duration::from_millis(20));
        }
    }

    /// Stops the workers (each finishes its current request) and returns every outcome.
    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut outcomes: Vec<Outcome> = std::mem::take(&mut self.workers)
            .into_iter()
            .flat_map(|h| h.join().expect("load worker panicked"))
            .collect();
        outcomes.sort_by_key(|o| o.start);
        let report = Report {
            outcomes,
            started: self.started,
            ended: Instant::now(),
        };
        println!("[e2e] load: {}", report.summary());
        report
    }
}

impl Drop for Load {
    /// A test that panics mid-load must not leave its workers hammering a deleted namespace:
    /// they stop after their current request (the threads are not joined here).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Every request of a load run.
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub started: Instant,
    pub ended: Instant,
}

impl Report {
    pub fn sent(&self) -> usize {
        self.outcomes.len()
    }

    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.error.is_some()).collect()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1} s, {} failed",
            self.sent(),
            (self.ended - self.started).as_secs_f64(),
            self.failures().len()
        )
    }

    /// The failures, one per line (at most 30), for assertion messages.
    pub fn failure_lines(&self) -> String {
        let failures = self.failures();
        let mut text: Vec<String> = failures
            .iter()
            .take(30)
            .map(|o| {
                format!(
                    "{} at +{:.3}s..+{:.3}s: {}",
                    o.id,
                    (o.start - self.started).as_secs_f64(),
                    (o.end - self.started).as_secs_f64(),
                    o.error.as_deref().unwrap_or_default()
                )
            })
            .collect();
        if failures.len() > 30 {
            text.push(format!("… and {} more", failures.len() - 30));
        }
        text.join("\n")
    }

    /// Asserts that every request got exactly its bytes back.
    pub fn assert_no_failures(&self, what: &str) {
        assert!(
            self.failures().is_empty(),
            "{what}: {}\n{}",
            self.summary(),
            self.failure_lines()
        );
    }
}

/// The body of request `id`: the id, then deterministic filler of a length varying with the
/// id (32 to ~3 KiB), so a response carrying another request's bytes can never match.
pub fn body_for(id: &str, n: u64) -> Bytes {
    let len = 32 + ((n.wrapping_mul(2_654_435_761)) % 3000) as usize;
    let mut body = format!("{id}:").into_bytes();
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    while body.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push(b'a' + (x % 26) as u8);
    }
    Bytes::from(body)
}

async fn worker(
    w: usize,
    style: Style,
    target: String,
    gap: Duration,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut conn: Option<(H1Conn, u32)> = None;
    let mut seq: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let id = format!("w{w}r{seq}");
        let body = body_for(&id, seq * 64 + w as u64);
        let start = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            one_request(style, &target, &id, body.clone(), &mut conn),
        )
        .await
        .unwrap_or_else(|_| Err("no complete response within 30 s".into()));
        let error = match result {
            Ok((200, got)) if got == body => None,
            Ok((200, got)) => Some(format!(
                "200 with {} bytes that are not the {} sent: {:?}",
                got.len(),
                body.len(),
                String::from_utf8_lossy(&got[..got.len().min(120)])
            )),
            Ok((status, got)) => Some(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&got[..got.len().min(300)])
            )),
            Err(e) => Some(e),
        };
        if error.is_some() {
            conn = None;
            failed.fetch_add(1, Ordering::SeqCst);
        } else {
            ok.fetch_add(1, Ordering::SeqCst);
        }
        outcomes.push(Outcome {
            id,
            start,
            end: Instant::now(),
            error,
        });
        tokio::time::sleep(gap).await;
    }
    outcomes
}

async fn one_request(
    style: Style,
    target: &str,
    id: &str,
    body: Bytes,
    conn: &mut Option<(H1Conn, u32)>,
) -> Result<(u16, Bytes), String> {
    let mut builder =
        Request::post(format!("/echo?id={id}")).header("content-type", "application/octet-stream");
    let reuse = match style {
        Style::KeepAlive => true,
        Style::NewConnection => {
            builder = builder.header("connection", "close");
            false
        }
    };
    let req = builder
        .body(Full::new(body))
        .map_err(|e| format!("build request: {e}"))?;
    if !reuse || conn.as_ref().is_some_and(|(_, used)| *used >= 40) {
        *conn = None;
    }
    if conn.is_none() {
        let c = H1Conn::connect(target)
            .await
            .map_err(|e| format!("connect {target}: {e:#}"))?;
        *conn = Some((c, 0));
    }
    let (c, used) = conn.as_mut().expect("connection");
    *used += 1;
    let resp = c.fetch(req).await.map_err(|e| format!("request: {e:#}"));
    if !reuse {
        *conn = None;
    }
    let resp = resp?;
    Ok((resp.status.as_u16(), resp.body))
}
