//! Sockets of `netfilter_udp`: the TPROXY listener that learns each datagram's original
//! destination, and the sender that answers *from* that destination.
//!
//! Replies must carry the original destination as their source, or the application (ingress
//! side) and the ingress's connected QUIC socket (egress side) would drop them. Binding a
//! socket to that address is not an option on the egress, where the service itself is bound
//! to it, so replies are written as whole IPv4 packets on an `IPPROTO_RAW` socket, which is
//! send-only and so never sees a copy of inbound traffic.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{self as sock, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};

/// A UDP socket for TPROXYed datagrams (`IP_TRANSPARENT`) that reports each datagram's
/// original destination (`IP_RECVORIGDSTADDR`). Non-blocking.
pub fn tproxy_socket(addr: SocketAddrV4) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_ip_transparent(true)?;
    sock::setsockopt(&socket, sockopt::Ipv4OrigDstAddr, &true).map_err(io::Error::from)?;
    // Every captured flow shares this socket: room for bursts of many clients.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(addr).into())?;
    Ok(socket.into())
}

/// One datagram read from a [`tproxy_socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Captured {
    pub len: usize,
    pub src: SocketAddrV4,
    pub original_dst: SocketAddrV4,
}

/// Reads one datagram without waiting (`WouldBlock` when there is none).
pub fn recv_captured(socket: &impl AsFd, buf: &mut [u8]) -> io::Result<Captured> {
    let mut cmsg = nix::cmsg_space!(nix::libc::sockaddr_in);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = sock::recvmsg::<SockaddrIn>(
        socket.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let src = msg
        .address
        .map(SocketAddrV4::from)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without a source"))?;
    let mut original_dst = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::Ipv4OrigDstAddr(addr) = c {
            original_dst = Some(SocketAddrV4::from(SockaddrIn::from(addr)));
        }
    }
    let original_dst = original_dst.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without its original destination (not TPROXYed?)",
        )
    })?;
    Ok(Captured {
        len: msg.bytes,
        src,
        original_dst,
    })
}

/// Sends UDP datagrams with any source address, as whole IPv4 packets.
#[derive(Debug)]
pub struct SpoofingSender {
    socket: socket2::Socket,
}

/// `IPPROTO_RAW`: the packet handed over includes its IP header, and the socket receives
/// nothing.
const IPPROTO_RAW: i32 = 255;

impl SpoofingSender {
    /// `mark`: the SO_MARK that keeps the packets out of our own capture rules.
    pub fn new(mark: u32) -> io::Result<Self> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(IPPROTO_RAW)),
        )?;
        socket.set_mark(mark)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }

    /// One datagram `from` → `to`. Never waits: a full send buffer is `WouldBlock`, and the
    /// datagram is lost as UDP allows.
    pub fn send(&self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> io::Result<()> {
        let builder = etherparse::PacketBuilder::ipv4(from.ip().octets(), to.ip().octets(), 64)
            .udp(from.port(), to.port());
        let mut packet = Vec::with_capacity(builder.size(payload.len()));
        builder
            .write(&mut packet, payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.socket
            .send_to(&packet, &SocketAddr::V4(to).into())
            .map(|_| ())
    }
}
