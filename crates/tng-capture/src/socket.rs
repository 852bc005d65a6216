//! Socket-level facts capture depends on.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;

/// The destination a REDIRECTed connection was originally sent to (conntrack's pre-NAT
/// destination, `SO_ORIGINAL_DST`).
pub fn original_dst(socket: &impl AsFd) -> io::Result<SocketAddrV4> {
    let addr = socket2::SockRef::from(socket).original_dst()?;
    addr.as_socket_ipv4().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "original destination is not IPv4",
        )
    })
}

/// A listener that accepts TPROXYed connections (`IP_TRANSPARENT`); their local address is
/// the original destination.
pub fn transparent_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_ip_transparent(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
