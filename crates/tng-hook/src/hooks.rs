//! What each overridden call does, in safe code over the wrappers of [`crate::ffi`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::OnceLock;
use std::time::Duration;

use crate::ffi;
use crate::log::{Level, Logger};
use crate::tables::{EgressTable, IngressTable};

/// How long the engine may take to answer the CONNECT (it opens and attests the tunnel
/// before it answers).
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest status or header line read from the engine.
const MAX_LINE: usize = 8 * 1024;

struct State {
    ingress: IngressTable,
    egress: EgressTable,
    /// IPv4 addresses of the local interfaces when the library loaded.
    local_ips: Vec<Ipv4Addr>,
    logger: Logger,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| {
        let logger = Logger::from_env();
        let ingress = table::<IngressTable>(&logger, "TNG_HOOK_INGRESS_MAPPINGS");
        let egress = table::<EgressTable>(&logger, "TNG_HOOK_EGRESS_MAPPINGS");
        let local_ips = if ingress.ingresses.is_empty() {
            Vec::new()
        } else {
            ffi::local_ipv4s()
        };
        State {
            ingress,
            egress,
            local_ips,
            logger,
        }
    })
}

/// A table from the environment; absent or unparsable means that direction is off.
fn table<T: serde::de::DeserializeOwned + Default>(logger: &Logger, name: &str) -> T {
    match std::env::var(name) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|err| {
            logger.log(
                Level::Error,
                &format!("{name} is not a valid table ({err}); this direction is not hooked"),
            );
            T::default()
        }),
        Err(_) => T::default(),
    }
}

/// Runs when the library is loaded.
pub fn init() {
    let state = state();
    if state.ingress.ingresses.is_empty() && state.egress.entries.is_empty() {
        return;
    }
    state.logger.log(
        Level::Info,
        &format!(
            "tng-hook: initialized ({} capture rules for {} ingresses, {} egress ports)",
            state.ingress.rules(),
            state.ingress.ingresses.len(),
            state.egress.entries.len()
        ),
    );
}

/// What an overridden call does instead of the real one.
pub enum Outcome {
    /// Call the real function with the original arguments.
    PassThrough,
    /// Done here: 0, or -1 with this errno.
    Done(Result<(), i32>),
}

/// `connect(fd, dst)`.
pub fn on_connect(fd: i32, dst: SocketAddr) -> Outcome {
    let (ip, port, mapped) = match dst {
        SocketAddr::V4(v4) => (*v4.ip(), v4.port(), false),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => (ip, v6.port(), true),
            None => return Outcome::PassThrough,
        },
    };
    if ffi::socket_type(fd) != Some(libc::SOCK_STREAM) {
        return Outcome::PassThrough;
    }
    if ip.is_unspecified() {
        return Outcome::Done(Err(libc::ECONNREFUSED));
    }
    let state = state();
    let Some(proxy_port) = state.ingress.decide(ip, port, &state.local_ips) else {
        return Outcome::PassThrough;
    };
    let target = SocketAddrV4::new(ip, port);
    let proxy = if mapped {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
            proxy_port,
            0,
            0,
        ))
    } else {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, proxy_port))
    };
    let result = tunnel(fd, target, proxy);
    match &result {
        Ok(()) => state.logger.log(
            Level::Info,
            &format!("connect hijacked: {target} → proxy {proxy} (tunnel established)"),
        ),
        Err(why) => state.logger.log(
            Level::Error,
            &format!(
                "connect to {target} through proxy {proxy} failed: {}",
                why.1
            ),
        ),
    }
    Outcome::Done(result.map_err(|(errno, _)| errno))
}

/// Connects `fd` to the engine's proxy and asks it for a tunnel to `target`, blocking (the
/// socket's own mode and receive timeout are restored afterwards).
fn tunnel(fd: i32, target: SocketAddrV4, proxy: SocketAddr) -> Result<(), (i32, String)> {
    let flags = ffi::get_flags(fd).map_err(|e| (e, format!("fcntl: errno {e}")))?;
    let nonblocking = flags & libc::O_NONBLOCK != 0;
    if nonblocking {
        ffi::set_flags(fd, flags & !libc::O_NONBLOCK)
            .map_err(|e| (e, format!("fcntl: errno {e}")))?;
    }
    let old_timeout = ffi::get_rcvtimeo(fd);
    let _ = ffi::set_rcvtimeo(fd, PROXY_TIMEOUT);
    let result = ffi::real_connect(fd, proxy)
        .map_err(|e| (e, format!("cannot reach the engine: errno {e}")))
        .and_then(|()| handshake(fd, target).map_err(|why| (libc::ECONNREFUSED, why)));
    if let Some(old) = old_timeout {
        let _ = ffi::set_rcvtimeo(fd, old);
    }
    if nonblocking {
        let _ = ffi::set_flags(fd, flags);
    }
    result
}

fn handshake(fd: i32, target: SocketAddrV4) -> Result<(), String> {
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost:{target}\r\n\r\n");
    ffi::send_all(fd, request.as_bytes()).map_err(|e| format!("sending CONNECT: errno {e}"))?;
    let status = read_line(fd)?;
    let ok = status.starts_with(b"HTTP/1.1 200") || status.starts_with(b"HTTP/1.0 200");
    if !ok {
        return Err(format!(
            "the engine answered {:?} (no protected tunnel)",
            String::from_utf8_lossy(&status).trim_end()
        ));
    }
    loop {
        let line = read_line(fd)?;
        if line == b"\r\n" || line == b"\n" {
            return Ok(());
        }
    }
}

/// One line, byte by byte (nothing after the response head may be consumed).
fn read_line(fd: i32) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    while line.len() < MAX_LINE {
        match ffi::recv_byte(fd) {
            Ok(Some(b)) => {
                line.push(b);
                if b == b'\n' {
                    return Ok(line);
                }
            }
            Ok(None) => return Err("the engine closed the connection".into()),
            Err(e) => return Err(format!("reading the engine's answer: errno {e}")),
        }
    }
    Err("the engine's answer has an over-long line".into())
}

/// `bind(fd, addr)`: the address to bind instead, if its port is an origin port.
pub fn on_bind(addr: SocketAddr) -> Option<SocketAddr> {
    let port = addr.port();
    if port == 0 {
        return None;
    }
    let state = state();
    let real = state.egress.real_port(port)?;
    let mut out = addr;
    out.set_port(real);
    state
        .logger
        .log(Level::Info, &format!("bind hijacked: {addr} → {out}"));
    Some(out)
}

/// `getsockname(fd)` returned `addr`: the port to report instead, if it is a real port.
pub fn on_getsockname(addr: SocketAddr) -> Option<u16> {
    if addr.port() == 0 {
        return None;
    }
    state().egress.origin_port(addr.port())
}
