//! Many datagrams per system call on the application-facing UDP sockets, through quinn's UDP
//! layer: `recvmmsg` (and GRO where the kernel coalesces) to read, GSO to write. One
//! `recvfrom` / `sendto` per datagram was most of a UDP gateway's kernel time; under load
//! several datagrams usually wait on either side.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
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

/// The most one GSO transmit may carry: the largest UDP payload of one IPv4 packet.
const MAX_GSO_PAYLOAD: usize = 65_507;

/// Sending many datagrams per system call: runs of equal-sized datagrams to one destination go
/// out as one UDP GSO transmit (the kernel splits them at the original boundaries).
pub struct BatchSender {
    state: UdpSocketState,
}

impl BatchSender {
    pub fn new(socket: &UdpSocket) -> io::Result<Self> {
        Ok(Self {
            state: UdpSocketState::new(socket.into())?,
        })
    }

    /// The transmits `datagrams` to `to` make, each with its segment size when it carries more
    /// than one datagram: equal sizes, the last of a run possibly shorter, at most the
    /// kernel's segment count and one UDP payload in all.
    fn runs<'a>(&self, datagrams: &'a [Bytes]) -> Vec<(&'a [Bytes], Option<usize>)> {
        let max = self.state.max_gso_segments().max(1);
        let mut runs = Vec::new();
        let mut rest = datagrams;
        while let Some(first) = rest.first() {
            let size = first.len();
            let mut n = 1;
            let mut total = size;
            while n < rest.len()
                && n < max
                && size > 0
                && rest[n].len() <= size
                // An empty datagram adds nothing to a transmit: it would vanish inside it.
                && !rest[n].is_empty()
                && total + rest[n].len() <= MAX_GSO_PAYLOAD
            {
                total += rest[n].len();
                n += 1;
                if rest[n - 1].len() < size {
                    break;
                }
            }
            let (run, tail) = rest.split_at(n);
            runs.push((run, (n > 1).then_some(size)));
            rest = tail;
        }
        runs
    }

    /// Sends `datagrams` to `to` in order, waiting while the socket is full.
    pub async fn send(
        &self,
        socket: &UdpSocket,
        to: SocketAddr,
        datagrams: &[Bytes],
    ) -> io::Result<()> {
        let mut contents = Vec::new();
        for (run, segment_size) in self.runs(datagrams) {
            let transmit = transmit(to, run, segment_size, &mut contents);
            socket
                .async_io(Interest::WRITABLE, || {
                    self.state.try_send(socket.into(), &transmit)
                })
                .await?;
        }
        Ok(())
    }

    /// [`Self::send`] without waiting: what the socket cannot take now is lost, as UDP allows.
    pub fn try_send(
        &self,
        socket: &UdpSocket,
        to: SocketAddr,
        datagrams: &[Bytes],
    ) -> io::Result<()> {
        let mut contents = Vec::new();
        for (run, segment_size) in self.runs(datagrams) {
            let transmit = transmit(to, run, segment_size, &mut contents);
            socket.try_io(Interest::WRITABLE, || {
                self.state.try_send(socket.into(), &transmit)
            })?;
        }
        Ok(())
    }
}

/// One run as a transmit, its datagrams laid end to end in `contents`.
fn transmit<'a>(
    to: SocketAddr,
    run: &[Bytes],
    segment_size: Option<usize>,
    contents: &'a mut Vec<u8>,
) -> Transmit<'a> {
    contents.clear();
    for d in run {
        contents.extend_from_slice(d);
    }
    Transmit {
        destination: to,
        ecn: None,
        contents,
        segment_size,
        src_ip: None,
    }
}

/// Up to `max` datagrams that have already arrived on `conn`, after `first`.
pub fn drain_datagrams(conn: &quinn::Connection, first: Bytes, max: usize) -> Vec<Bytes> {
    use futures_util::FutureExt as _;
    let mut batch = vec![first];
    while batch.len() < max {
        match conn.read_datagram().now_or_never() {
            Some(Ok(next)) => batch.push(next),
            _ => break,
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(runs: &[(&[Bytes], Option<usize>)]) -> Vec<(Vec<usize>, Option<usize>)> {
        runs.iter()
            .map(|(run, seg)| (run.iter().map(Bytes::len).collect(), *seg))
            .collect()
    }

    #[tokio::test]
    async fn runs_are_equal_sized_with_a_shorter_last_and_fit_one_payload() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = BatchSender::new(&socket).unwrap();
        let d = |n: usize| Bytes::from(vec![7u8; n]);
        let datagrams = [d(100), d(100), d(40), d(100), d(200), d(0), d(0)];
        let runs = sender.runs(&datagrams);
        let max = sender.state.max_gso_segments();
        if max > 1 {
            assert_eq!(
                sizes(&runs),
                [
                    (vec![100, 100, 40], Some(100)),
                    (vec![100], None),
                    (vec![200], None),
                    (vec![0], None),
                    (vec![0], None),
                ]
            );
            let big: Vec<Bytes> = (0..4).map(|_| d(30_000)).collect();
            let runs = sender.runs(&big);
            assert_eq!(
                sizes(&runs),
                [
                    (vec![30_000, 30_000], Some(30_000)),
                    (vec![30_000, 30_000], Some(30_000))
                ]
            );
        } else {
            assert!(runs
                .iter()
                .all(|(run, seg)| run.len() == 1 && seg.is_none()));
        }
    }

    #[tokio::test]
    async fn a_batch_arrives_as_the_datagrams_it_was_made_of() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = BatchSender::new(&tx).unwrap();
        let mut reader = BatchReader::new(&rx, 32).unwrap();
        let sent: Vec<Bytes> = [500, 500, 500, 120, 7, 0, 7]
            .iter()
            .enumerate()
            .map(|(i, n)| Bytes::from(vec![i as u8; *n]))
            .collect();
        sender
            .send(&tx, rx.local_addr().unwrap(), &sent)
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let n = reader.recv(&rx).await.unwrap();
            got.extend(reader.datagrams(n).map(|(_, d)| Bytes::copy_from_slice(d)));
        }
        assert_eq!(got, sent);
    }
}
