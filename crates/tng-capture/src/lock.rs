//! One TNG per network namespace: the abstract unix socket `@tng` is the lock (as upstream).
//! Abstract sockets belong to the network namespace and vanish with the process, so a
//! SIGKILLed instance never leaves a stale lock behind.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use crate::iptables::CaptureError;

pub struct InstanceLock {
    _socket: UnixListener,
}

pub fn acquire() -> Result<InstanceLock, CaptureError> {
    let addr = SocketAddr::from_abstract_name(b"tng")?;
    match UnixListener::bind_addr(&addr) {
        Ok(socket) => Ok(InstanceLock { _socket: socket }),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            Err(CaptureError::AlreadyRunning)
        }
        Err(err) => Err(err.into()),
    }
}
