//! A TCP connector for the hyper-util client whose sockets can carry an `SO_MARK`, so that the
//! gateway's own connections to the Attestation Service are never captured by its netfilter
//! rules.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, Clone)]
pub(crate) struct MarkedConnector {
    pub(crate) so_mark: Option<u32>,
    pub(crate) connect_timeout: Duration,
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<TcpStream>>> + Send>>;

impl tower_service::Service<Uri> for MarkedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await.map(TokioIo::new) })
    }
}

impl MarkedConnector {
    async fn connect(&self, uri: Uri) -> io::Result<TcpStream> {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        let mut last_error = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        );
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, self.connect_addr(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last_error = e,
                Err(_) => {
                    last_error = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "connecting to {addr} timed out after {:?}",
                            self.connect_timeout
                        ),
                    )
                }
            }
        }
        Err(last_error)
    }

    async fn connect_addr(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if let Some(mark) = self.so_mark {
            socket.set_mark(mark).map_err(|e| {
                io::Error::new(e.kind(), format!("setting SO_MARK {mark} failed: {e}"))
            })?;
        }
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
        socket.connect(addr).await
    }
}
