//! Helpers shared by the fault tests (`faults.rs`) and the leak sweep (`leaks.rs`): a steady
//! request load that can be held while a component is down, socket accounting of a process,
//! restarting a `tng` with its own configuration, and servers that misbehave on purpose.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tng_e2e::client::H1Conn;
use tng_e2e::*;

/// Generous upper bound for anything that should take milliseconds.
pub const GENEROUS: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Load

/// One finished request of a [`Load`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
    pub detail: String,
}

/// `loops` keep-alive clients, each sending requests back to back: small `POST /echo` bodies
/// (well under the 64 KiB replay limit) and every third one a `GET /slow?ms=200`, so that a
/// fault always finds requests in flight. Every response is checked byte for byte.
pub struct Load {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: &str, loops: usize) -> Load {
        let mut load = Load {
            stop: Arc::default(),
            paused: Arc::default(),
            in_flight: Arc::default(),
            outcomes: Arc::default(),
            thread: None,
        };
        let (stop, paused, in_flight, outcomes) = (
            load.stop.clone(),
            load.paused.clone(),
            load.in_flight.clone(),
            load.outcomes.clone(),
        );
        let addr = addr.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for l in 0..loops {
                    let (addr, stop, paused, in_flight, outcomes) = (
                        addr.clone(),
                        stop.clone(),
                        paused.clone(),
                        in_flight.clone(),
                        outcomes.clone(),
                    );
                    tasks.push(tokio::spawn(async move {
                        let mut conn: Option<H1Conn> = None;
                        // Each loop starts at another point of the request pattern, so a
                        // fault finds a mix of fast and slow requests in flight.
                        let mut n = l as u64;
                        while !stop.load(Ordering::SeqCst) {
                            // Counted before the gate is checked, so that `pause` never misses
                            // a request that is about to be sent.
                            in_flight.fetch_add(1, Ordering::SeqCst);
                            if paused.load(Ordering::SeqCst) {
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                continue;
                            }
                            n += 1;
                            let start = Instant::now();
                            let (ok, detail, broken) = one_request(&addr, &mut conn, l, n).await;
                            if broken {
                                conn = None;
                            }
                            outcomes.lock().unwrap().push(Outcome {
                                start,
                                end: Instant::now(),
                                ok,
                                detail,
                            });
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        });
        load.thread = Some(thread);
        load
    }

    /// Holds every client before its next request; returns how many requests may be in
    /// flight right now (an upper bound: the ones started before the gate closed).
    pub fn pause(&self) -> usize {
        self.paused.store(true, Ordering::SeqCst);
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until the requests in flight have finished (after [`Load::pause`]).
    pub fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "requests still in flight");
            pause(Duration::from_millis(5));
        }
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    /// Waits until at least `n` more requests succeeded than `after` did, or panics.
    pub fn wait_successes(&self, after: usize, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.outcomes().iter().filter(|o| o.ok).count();
            if ok >= after + n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} successes; failures: {:?}",
                ok - after,
                failures(&self.outcomes())
                    .iter()
                    .take(5)
                    .map(|o| &o.detail)
                    .collect::<Vec<_>>()
            );
            pause(Duration::from_millis(20));
        }
    }

    /// Stops the clients (after their current request) and returns every outcome.
    pub fn stop(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        self.resume();
        if let Some(t) = self.thread.take() {
            t.join().expect("load thread");
        }
        self.outcomes()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}

pub fn failures(outcomes: &[Outcome]) -> Vec<Outcome> {
    outcomes.iter().filter(|o| !o.ok).cloned().collect()
}

/// `(ok, detail, connection broken)`.
async fn one_request(
    addr: &str,
    conn: &mut Option<H1Conn>,
    l: usize,
    n: u64,
) -> (bool, String, bool) {
    if conn.is_none() {
        match H1Conn::connect(addr).await {
            Ok(c) => *conn = Some(c),
            Err(e) => return (false, format!("loop {l} #{n}: connect: {e}"), true),
        }
    }
    let c = conn.as_mut().expect("connected");
    let (sent, expected) = if n.is_multiple_of(3) {
        (
            tokio::time::timeout(Duration::from_secs(15), c.get("/slow?ms=200")).await,
            b"slow 200 ms\n".to_vec(),
        )
    } else {
        let mut body = format!("loop {l} request {n} ").into_bytes();
        body.resize(2048, b'.');
        (
            tokio::time::timeout(Duration::from_secs(15), c.post("/echo", body.clone())).await,
            body,
        )
    };
    match sent {
        Ok(Ok(r)) if r.status == 200 && r.body.as_ref() == expected.as_slice() => {
            (true, String::new(), false)
        }
        Ok(Ok(r)) => (
            false,
            format!(
                "loop {l} #{n}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            false,
        ),
        Ok(Err(e)) => (false, format!("loop {l} #{n}: {e}"), true),
        Err(_) => (false, format!("loop {l} #{n}: no answer in 15 s"), true),
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and sockets

/// Starts a new `tng` with the configuration of `old` (same ports, same control interface).
/// `old` must have exited.
pub fn relaunch(old: &Tng, name: &str) -> Tng {
    let text = std::fs::read(old.dir.join("config.json")).expect("config of the old process");
    let config: serde_json::Value = serde_json::from_slice(&text).expect("config JSON");
    Tng::launch_named(name, config)
}

/// SIGKILL and reap.
pub fn kill(proc: &mut Proc) {
    proc.signal("KILL");
    assert!(
        proc.wait_timeout(Duration::from_secs(10)).is_some(),
        "{} survived SIGKILL",
        proc.name()
    );
}

/// Open sockets of a process (entries of `/proc/<pid>/fd` pointing at `socket:[…]`).
pub fn open_sockets(pid: u32) -> usize {
    let dir = format!("/proc/{pid}/fd");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count()
}

/// Waits (up to `timeout`) until `pid` holds at most `limit` sockets; returns the last count.
pub fn settle_sockets(pid: u32, limit: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = open_sockets(pid);
        if n <= limit || Instant::now() > deadline {
            return n;
        }
        pause(Duration::from_millis(50));
    }
}

/// Established TCP connections owned by `pid` towards local port `port` (via `ss`).
pub fn connections_to(pid: u32, port: u16) -> usize {
    let out = Command::new("ss")
        .args([
            "-Htnp",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .expect("run ss (iproute2)");
    let owner = format!("pid={pid},");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&owner))
        .count()
}

/// Waits (up to `timeout`) until `pid` has no connection to `port`; returns the last count.
pub fn settle_connections(pid: u32, port: u16, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = connections_to(pid, port);
        if n == 0 || Instant::now() > deadline {
            return n;
        }
        pause(Duration::from_millis(50));
    }
}

/// `tng-devkit backend` on a fixed address (to bring a stopped backend back on its port).
pub fn backend_at(addr: &str) -> Proc {
    let mut cmd = Command::new(bin("tng-devkit"));
    cmd.args(["backend", "--listen", addr]);
    let mut proc = Proc::spawn("backend", cmd, &test_dir("backend"));
    proc.wait_for_line("backend listening on ", Duration::from_secs(10));
    proc
}

// ---------------------------------------------------------------------------------------------
// Misbehaving services

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Reads part of the request and closes with the rest unread: the kernel answers RST.
    ResetOnRequest,
    /// Sends a response head announcing 100000 bytes, 8 of them, then closes.
    CloseMidResponse,
}

/// A plain TCP service on 127.0.0.1 that breaks every connection as told. Stops on drop.
pub struct BadService {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub connections: Arc<AtomicUsize>,
}

impl BadService {
    pub fn start(kind: Misbehaviour) -> BadService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop: Arc<AtomicBool> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let (s, c) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || misbehave(stream, kind));
            }
        });
        BadService {
            port,
            stop,
            connections,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for BadService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn misbehave(mut stream: TcpStream, kind: Misbehaviour) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut one = [0u8; 1];
    if stream.read(&mut one).unwrap_or(0) == 0 {
        return;
    }
    // Let the rest of the request arrive, so there is unread data when the socket closes.
    pause(Duration::from_millis(50));
    match kind {
        Misbehaviour::ResetOnRequest => drop(stream),
        Misbehaviour::CloseMidResponse => {
            let mut rest = [0u8; 65536];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.read(&mut rest);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\npartial-",
            );
            let _ = stream.flush();
            pause(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

/// `(status, code, message)` of a JSON error response.
pub fn error_of(r: &RawResponse) -> (u16, String, String) {
    let v = r.json();
    (
        r.status,
        v["code"].as_str().unwrap_or_default().to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// curl with a 20 s limit that returns `(curl exit code, status, body)` and never panics on
/// a transfer error (a cut body is an expected outcome in some tests).
pub fn curl_raw(args: &[&str]) -> (i32, u16, Vec<u8>) {
    let dir = test_dir("curl");
    let body = dir.join("body");
    let body_arg = body.display().to_string();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            &body_arg,
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("run curl");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        out.status.code().unwrap_or(-1),
        status,
        std::fs::read(&body).unwrap_or_default(),
    )
}
