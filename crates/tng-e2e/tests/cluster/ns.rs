//! Talking to processes inside a network namespace from the test process itself.
//!
//! A thread that calls `setns(CLONE_NEWNET)` on `/run/netns/<name>` creates every later socket
//! in that namespace, so the load client and the control-interface probes run as threads of
//! the test (no `ip netns exec curl` per request) without anything being added to the host's
//! own namespace.

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tng_e2e::client::H1Conn;

/// Moves the calling thread into network namespace `name` (for good).
pub fn enter(name: &str) {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns(2) on a valid, open namespace file descriptor; it only changes the network
    // namespace of the calling thread and touches no memory of ours.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
}

/// Runs the future `make()` returns on a fresh single-threaded runtime in a thread inside
/// namespace `name`, and waits for its result.
pub fn block_in<T, F, Fut>(name: &str, make: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let name = name.to_string();
    std::thread::spawn(move || {
        enter(&name);
        runtime().block_on(make())
    })
    .join()
    .expect("namespace thread panicked")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What one GET got: the status (0 when nothing answered: refused, reset, timeout) and body.
#[derive(Debug, Clone)]
pub struct Got {
    pub status: u16,
    pub body: String,
    pub error: String,
}

/// `GET http://addr/path` on a new connection, with a 5 s limit, from the current thread's
/// namespace (call it inside [`block_in`] or a thread that [`enter`]ed one).
pub async fn get(addr: &str, path: &str) -> Got {
    let attempt = async {
        let mut conn = H1Conn::connect(addr).await?;
        let req = Request::get(path)
            .header("connection", "close")
            .body(Full::new(Bytes::new()))?;
        conn.fetch(req).await
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(resp)) => Got {
            status: resp.status.as_u16(),
            body: String::from_utf8_lossy(&resp.body).into_owned(),
            error: String::new(),
        },
        Ok(Err(e)) => Got {
            status: 0,
            body: String::new(),
            error: format!("{e:#}"),
        },
        Err(_) => Got {
            status: 0,
            body: String::new(),
            error: "timed out after 5 s".into(),
        },
    }
}

/// Whether a TCP connection to `addr` is accepted (2 s limit) from the current thread's
/// namespace: `Ok(())`, or the error (e.g. "Connection refused").
pub async fn connect(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out after 2 s".into()),
    }
}
