//! UDP peers for the UDP-mode tests: a counting echo service, a client, and our gateway pair.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::free_port;
use crate::tng::{merge, Tng};

/// A UDP echo service on 127.0.0.1 that counts what it receives and from how many source
/// ports.
pub struct UdpEcho {
    pub addr: SocketAddr,
    received: Arc<AtomicU64>,
    peers: Arc<std::sync::Mutex<std::collections::HashSet<SocketAddr>>>,
}

impl UdpEcho {
    pub fn start() -> UdpEcho {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(addr: &str) -> UdpEcho {
        let socket = UdpSocket::bind(addr).expect("bind udp echo");
        let addr = socket.local_addr().expect("addr");
        let received = Arc::new(AtomicU64::new(0));
        let peers = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let (r, p) = (received.clone(), peers.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                r.fetch_add(1, Ordering::SeqCst);
                p.lock().expect("lock").insert(from);
                let _ = socket.send_to(&buf[..n], from);
            }
        });
        UdpEcho {
            addr,
            received,
            peers,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Distinct source addresses seen (one per tunnel connection at the egress).
    pub fn peers(&self) -> usize {
        self.peers.lock().expect("lock").len()
    }
}

/// A client socket on 127.0.0.1 with a receive timeout.
pub fn client(timeout: Duration) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    socket.set_read_timeout(Some(timeout)).expect("timeout");
    socket
}

/// Sends `payload` to `to` and waits for one reply; `None` on timeout.
pub fn roundtrip(socket: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(payload, to).expect("send");
    let mut buf = vec![0u8; 65535];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends until a reply equal to `payload` comes back (the first datagram pays for the
/// handshake), at most `tries` times.
pub fn roundtrip_eventually(
    socket: &UdpSocket,
    to: SocketAddr,
    payload: &[u8],
    tries: usize,
) -> bool {
    (0..tries).any(|_| roundtrip(socket, to, payload).as_deref() == Some(payload))
}

/// A `mapping_udp` entry on 127.0.0.1 plus `extra` (RA keys, `quic`).
pub fn mapping_udp_entry(in_port: u16, out_port: u16, extra: &Value) -> Value {
    let mut entry = json!({"mapping_udp": {
        "in": {"host": "127.0.0.1", "port": in_port},
        "out": {"host": "127.0.0.1", "port": out_port}}});
    if extra.get("attest").is_none() && extra.get("verify").is_none() {
        entry["no_ra"] = json!(true);
    }
    merge(&mut entry, extra);
    entry
}

/// Our egress and ingress in front of `backend_port`; the ingress listens on the returned
/// port.
pub struct UdpPair {
    pub egress: Tng,
    pub ingress: Tng,
    pub ingress_addr: SocketAddr,
    pub egress_port: u16,
}

pub fn udp_pair(backend_port: u16, egress_extra: Value, ingress_extra: Value) -> UdpPair {
    let egress_port = free_port();
    let egress = Tng::launch_named(
        "udp-egress",
        json!({"add_egress": [mapping_udp_entry(egress_port, backend_port, &egress_extra)]}),
    );
    let in_port = free_port();
    let ingress = Tng::launch_named(
        "udp-ingress",
        json!({"add_ingress": [mapping_udp_entry(in_port, egress_port, &ingress_extra)]}),
    );
    UdpPair {
        egress,
        ingress,
        ingress_addr: SocketAddr::from(([127, 0, 0, 1], in_port)),
        egress_port,
    }
}
