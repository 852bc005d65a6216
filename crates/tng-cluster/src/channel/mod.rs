//! The attested peer channel: the only path OHTTP private keys take between nodes.
//!
//! A node asks a peer for its key set by connecting over TCP to the peer's cluster port; both
//! run TLS 1.3, then the mutual attestation of [`handshake`]; the holder sends its keys only
//! after the asker's proof checked out, and the asker accepts them only after the holder's.

pub mod frame;
pub mod handshake;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info_span, warn, Instrument};

use self::frame::FrameError;
use self::handshake::{Answer, AttestationError, Hello, PeerAuth, ProofMessage};
use crate::key_set::WireKey;

/// Bound on one exchange, attestation included (an AA quote plus an AS round trip per side).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Exchanges answered at once. Each costs Attestation Service calls before the peer has proved
/// anything, so a flood of connections must not turn into a flood of AS requests; a real
/// cluster needs one exchange per peer at a time.
pub const MAX_CONCURRENT_EXCHANGES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("cannot attest this node: {0}")]
    OwnAttestation(AttestationError),
    #[error("attestation of the peer failed: {0}")]
    PeerAttestation(AttestationError),
    #[error("the peer refused to send keys: {0}")]
    Refused(String),
    #[error("no answer within {EXCHANGE_TIMEOUT:?}")]
    Timeout,
    #[error("cannot derive the TLS exporter: {0}")]
    Exporter(rustls::Error),
}

pub struct Channel {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    auth: PeerAuth,
    so_mark: Option<u32>,
}

impl Channel {
    pub fn new(auth: PeerAuth, so_mark: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            acceptor: TlsAcceptor::from(tls::server_config()?),
            connector: TlsConnector::from(tls::client_config()?),
            auth,
            so_mark,
        })
    }

    /// Answers peers until the listener fails. Each exchange runs in its own task, so a slow
    /// attestation never holds up the accept loop. `keys` is read when a peer has proved
    /// itself, so it gets the set as of that moment.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        keys: Arc<dyn Fn() -> Vec<WireKey> + Send + Sync>,
    ) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_EXCHANGES));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends pass; keep accepting after a breath.
                    warn!("peer channel: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn!(%peer, "peer channel: {MAX_CONCURRENT_EXCHANGES} exchanges already running, connection dropped");
                continue;
            };
            let channel = self.clone();
            let keys = keys.clone();
            tokio::spawn(
                async move {
                    let _slot = slot;
                    let exchange = channel.answer(stream, keys.as_ref());
                    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                        Ok(Ok(peer_id)) => debug!(%peer_id, "peer channel: key set sent"),
                        Ok(Err(err)) => warn!("peer channel: no keys sent: {err}"),
                        Err(_) => warn!("peer channel: no keys sent: {}", ChannelError::Timeout),
                    }
                }
                .instrument(info_span!("peer_channel", %peer)),
            );
        }
    }

    async fn answer(
        &self,
        stream: TcpStream,
        keys: &(dyn Fn() -> Vec<WireKey> + Send + Sync),
    ) -> Result<String, ChannelError> {
        let mut tls = self
            .acceptor
            .accept(stream)
            .await
            .map_err(ChannelError::Tls)?;
        let exporter = exporter(tls.get_ref().1)?;
        let hello: Hello = frame::read(&mut tls).await?;
        let challenge = self
            .auth
            .challenge()
            .await
            .map_err(ChannelError::OwnAttestation)?;
        let proof = self
            .auth
            .prove(&exporter, hello.challenge.as_deref())
            .await
            .map_err(ChannelError::OwnAttestation)?;
        frame::write(
            &mut tls,
            &ProofMessage {
                proof,
                challenge: challenge.clone(),
            },
        )
        .await?;
        let theirs: ProofMessage = frame::read(&mut tls).await?;
        let checked = self
            .auth
            .check(theirs.proof.as_ref(), &exporter, challenge.as_deref())
            .await;
        if let Err(err) = checked {
            let err = ChannelError::PeerAttestation(err);
            frame::write(&mut tls, &Answer::Refused(err.to_string())).await?;
            return Err(err);
        }
        frame::write(&mut tls, &Answer::Keys(keys())).await?;
        Ok(hello.node_id)
    }

    /// Asks the node at `peer` for its key set.
    pub async fn fetch(
        &self,
        peer: SocketAddr,
        self_id: &str,
    ) -> Result<Vec<WireKey>, ChannelError> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.ask(peer, self_id))
            .await
            .map_err(|_| ChannelError::Timeout)?
    }

    async fn ask(&self, peer: SocketAddr, self_id: &str) -> Result<Vec<WireKey>, ChannelError> {
        let stream = self.connect(peer).await?;
        let mut tls = self
            .connector
            .connect(tls::server_name(), stream)
            .await
            .map_err(ChannelError::Tls)?;
        let exporter = exporter(tls.get_ref().1)?;
        let challenge = self
            .auth
            .challenge()
            .await
            .map_err(ChannelError::OwnAttestation)?;
        let hello = Hello {
            node_id: self_id.to_owned(),
            challenge: challenge.clone(),
        };
        frame::write(&mut tls, &hello).await?;
        let theirs: ProofMessage = frame::read(&mut tls).await?;
        self.auth
            .check(theirs.proof.as_ref(), &exporter, challenge.as_deref())
            .await
            .map_err(ChannelError::PeerAttestation)?;
        let proof = self
            .auth
            .prove(&exporter, theirs.challenge.as_deref())
            .await
            .map_err(ChannelError::OwnAttestation)?;
        frame::write(
            &mut tls,
            &ProofMessage {
                proof,
                challenge: None,
            },
        )
        .await?;
        match frame::read(&mut tls).await? {
            Answer::Keys(keys) => Ok(keys),
            Answer::Refused(reason) => Err(ChannelError::Refused(reason)),
        }
    }

    async fn connect(&self, peer: SocketAddr) -> Result<TcpStream, ChannelError> {
        let socket = if peer.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(ChannelError::Connect)?;
        if let Some(mark) = self.so_mark {
            // Marked like every other connection the gateway makes, so capture rules skip it.
            socket2::SockRef::from(&socket)
                .set_mark(mark)
                .map_err(ChannelError::Connect)?;
        }
        tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
            .await
            .map_err(|_| ChannelError::Connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(ChannelError::Connect)
    }
}

fn exporter<S>(conn: &rustls::ConnectionCommon<S>) -> Result<Vec<u8>, ChannelError> {
    conn.export_keying_material(vec![0u8; tls::EXPORTER_LEN], tls::EXPORTER_LABEL, None)
        .map_err(ChannelError::Exporter)
}
