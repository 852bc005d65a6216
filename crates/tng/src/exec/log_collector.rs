//! The hook log collector: the library in the application sends its log lines as datagrams
//! to the abstract unix socket `@tng-hook-log-<pid of tng exec>`, each one route byte
//! (`0x01` info, `0x02` error) followed by the formatted line, which lands in this process's
//! log destinations as it is.

use std::os::linux::net::SocketAddrExt;

use tng_logging::LogSink;
use tokio::net::UnixDatagram;
use tracing::{warn, Level};

/// Datagrams this large or larger are dropped.
const MAX_RECORD: usize = 256 * 1024;

/// The socket name handed to the library (without the leading NUL of the abstract namespace).
pub fn socket_name() -> String {
    format!("tng-hook-log-{}", std::process::id())
}

/// Binds the collector's socket; the task that drains it is [`collect`].
pub fn bind(name: &str) -> std::io::Result<UnixDatagram> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
    socket.set_nonblocking(true)?;
    UnixDatagram::from_std(socket)
}

/// What one datagram says.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Line(Level, &'a [u8]),
    BadRoute(u8),
    Empty,
}

pub fn decode(datagram: &[u8]) -> Record<'_> {
    match datagram.split_first() {
        None => Record::Empty,
        Some((1, line)) => Record::Line(Level::INFO, line),
        Some((2, line)) => Record::Line(Level::ERROR, line),
        Some((route, _)) => Record::BadRoute(*route),
    }
}

/// Writes every record that arrives into `sink`, until the task is dropped.
pub async fn collect(socket: UnixDatagram, sink: LogSink) {
    let mut buf = vec![0u8; MAX_RECORD + 1];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(err) => {
                warn!("hook log collector stopped: {err}");
                return;
            }
        };
        if n > MAX_RECORD {
            warn!("hook log datagram truncated; dropped");
            continue;
        }
        match decode(&buf[..n]) {
            Record::Line(level, line) => sink.write_formatted(level, line),
            Record::BadRoute(route) => {
                warn!("hook log datagram decode error; dropped error=BadRoute({route})")
            }
            Record::Empty => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_byte_selects_the_level() {
        assert_eq!(decode(b"\x01hi"), Record::Line(Level::INFO, b"hi"));
        assert_eq!(decode(b"\x02oops"), Record::Line(Level::ERROR, b"oops"));
        assert_eq!(decode(b"\x00x"), Record::BadRoute(0));
        assert_eq!(decode(b""), Record::Empty);
    }
}
