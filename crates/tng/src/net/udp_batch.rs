//! Reading many datagrams per system call: `recvmmsg`, and UDP GRO where the kernel
//! coalesces, through quinn's UDP layer. One `recvfrom` per datagram was a visible share of a
//! UDP gateway's CPU; under load several datagrams usually wait in the socket.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn::udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The receive buffers of one socket. They are allocated zeroed and untouched, so memory is
/// only committed for the bytes datagrams actually fill.
pub struct BatchReader {
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl BatchReader {
    /// Up to `batch` datagrams per call, each up to the largest UDP payload.
    pub fn new(socket: &UdpSocket, batch: usize) -> io::Result<Self> {
        let batch = batch.clamp(1, quinn::udp::BATCH_SIZE);
        Ok(Self {
            state: UdpSocketState::new(socket.into())?,
            bufs: (0..batch).map(|_| vec![0u8; u16::MAX as usize]).collect(),
            meta: vec![RecvMeta::default(); batch],
        })
    }

    /// Waits until datagrams arrive and reads what is there: the number of buffers filled,
    /// for [`Self::datagrams`]. Cancel-safe: nothing is read before readiness.
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Self { state, bufs, meta } = self;
        loop {
            socket.readable().await?;
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match socket.try_io(Interest::READABLE, || {
                state.recv(socket.into(), &mut slices, meta)
            }) {
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// The datagrams of the last [`Self::recv`] that filled `n` buffers, in arrival order:
    /// (source, payload), coalesced segments split again at their original boundaries.
    pub fn datagrams(&self, n: usize) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.meta[..n]
            .iter()
            .zip(&self.bufs)
            .flat_map(|(meta, buf)| {
                let data = &buf[..meta.len];
                let stride = if meta.stride == 0 {
                    meta.len.max(1)
                } else {
                    meta.stride
                };
                let empty = data.is_empty().then_some(&data[..0]);
                data.chunks(stride)
                    .chain(empty)
                    .map(move |segment| (meta.addr, segment))
            })
    }
}
