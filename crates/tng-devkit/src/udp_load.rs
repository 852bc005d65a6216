//! A UDP echo service and a closed-loop load generator for the UDP benchmark
//! (`bench/udp.py`): compiled, so the load side costs far less CPU than the gateways it
//! measures.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Echoes every datagram to its sender, forever.
pub fn echo(listen: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    eprintln!("udp echo listening on {}", socket.local_addr()?);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let _ = socket.send_to(&buf[..n], from);
    }
}

/// Keeps `window` datagrams of `size` bytes in flight to `target` for `duration`, refilling
/// the window when a reply is 200 ms late (the rest counted lost); prints one JSON line with
/// what came back.
pub fn load(
    target: SocketAddr,
    size: usize,
    window: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let payload = vec![b'x'; size];
    let mut buf = vec![0u8; 65535];
    // Warm-up: the tunnel's handshake is not measured.
    for _ in 0..50 {
        socket.send(&payload)?;
        if socket.recv(&mut buf).is_ok() {
            break;
        }
    }
    while socket.recv(&mut buf).is_ok() {}
    let started = Instant::now();
    let (mut echoed, mut in_flight) = (0u64, 0usize);
    while started.elapsed() < duration {
        while in_flight < window {
            socket.send(&payload)?;
            in_flight += 1;
        }
        match socket.recv(&mut buf) {
            Ok(_) => {
                echoed += 1;
                in_flight -= 1;
            }
            Err(_) => in_flight = 0,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{{\"echoed\": {echoed}, \"seconds\": {seconds:.3}}}");
    Ok(())
}
