//! One original destination's share of the egress's TPROXY listener, as quinn sees a socket:
//! datagrams arrive through a channel from the listener's dispatcher, and leave spoofed from
//! the original destination, so the ingress's QUIC socket — connected to that address —
//! accepts them.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use tng_capture::udp_socket::SpoofingSender;
use tokio::sync::mpsc;

pub struct CapturedSocket {
    local: SocketAddrV4,
    rx: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
    sender: Arc<SpoofingSender>,
}

impl CapturedSocket {
    pub fn new(
        local: SocketAddrV4,
        rx: mpsc::Receiver<(SocketAddr, Bytes)>,
        sender: Arc<SpoofingSender>,
    ) -> Self {
        Self {
            local,
            rx: Mutex::new(rx),
            sender,
        }
    }
}

impl fmt::Debug for CapturedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapturedSocket")
            .field("local", &self.local)
            .finish()
    }
}

/// The raw socket never makes us wait: a datagram it cannot take is lost, which QUIC
/// recovers from like any other loss.
#[derive(Debug)]
struct AlwaysWritable;

impl quinn::UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl quinn::AsyncUdpSocket for CapturedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let SocketAddr::V4(to) = transmit.destination else {
            return Err(io::Error::other("netfilter_udp carries IPv4 only"));
        };
        match self.sender.send(self.local, to, transmit.contents) {
            // A full buffer, or a packet larger than the device (quinn's path MTU probes):
            // lost, as on a real path.
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.raw_os_error() == Some(nix::libc::EMSGSIZE) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
        let room = bufs.len().min(meta.len());
        let mut n = 0;
        while n < room {
            let next = if n == 0 {
                match rx.poll_recv(cx) {
                    Poll::Ready(next) => next,
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                rx.try_recv().ok()
            };
            // A closed channel: the dispatcher has stopped, and this endpoint with it.
            let Some((src, datagram)) = next else {
                break;
            };
            let len = datagram.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&datagram[..len]);
            meta[n] = RecvMeta {
                addr: src,
                len,
                stride: len,
                ecn: None,
                dst_ip: Some((*self.local.ip()).into()),
            };
            n += 1;
        }
        if n == 0 {
            return Poll::Pending;
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.local))
    }

    fn may_fragment(&self) -> bool {
        // Larger-than-device packets fail instead of fragmenting, so path MTU discovery works.
        false
    }
}
