//! Sockets, with the options every side agrees on: outbound connections are marked before
//! their first packet (so capture rules never re-capture our own traffic), listeners are
//! bound before they listen (so start-up fails on a taken port without accepting anything).

use std::io;
use std::net::SocketAddr;

mod metered;
pub mod proxy_protocol;
pub mod tls_server;
pub mod udp_batch;

pub use metered::Metered;

use tokio::net::{TcpSocket, TcpStream};

/// Pending-connection queue of every listener (the kernel caps it at `somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A socket bound to `addr` (so start-up fails on a taken port) that does not listen yet:
/// until [`TcpSocket::listen`], connection attempts are refused rather than queued, which a
/// load balancer in front takes as "try another node".
pub fn bind_unlistened(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Opens a TCP connection, marking the socket before it sends its first packet.
pub async fn connect(host: &str, port: u16, so_mark: Option<u32>) -> io::Result<TcpStream> {
    let mut last_err = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match connect_addr(addr, so_mark).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        )
    }))
}

async fn connect_addr(addr: SocketAddr, so_mark: Option<u32>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(mark) = so_mark {
        socket2::SockRef::from(&socket).set_mark(mark)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// TCP keepalive as upstream sets it on tunnel sockets (idle 10 s, interval 10 s, 3 probes):
/// a tunnel to a vanished peer is noticed within a minute even when nothing flows.
pub fn set_tunnel_keepalive(stream: &TcpStream) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(10))
        .with_interval(std::time::Duration::from_secs(10))
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}
