//! One `add_egress` entry running: its capture mode's listeners feed its transport, which
//! hands what it carries to the service; `direct_forward` connections bypass the transport.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tng_config::{Egress, EgressMode};
use tng_telemetry::{InstanceMetrics, Telemetry};
use tokio::net::{TcpSocket, TcpStream};
use tracing::{debug, error, info, warn};

use crate::capture::direct_forward::{self, Route};
use crate::capture::hook::EgressPolicy;
use crate::capture::{Capture, Destination};
use crate::control::{Readiness, Status};
use crate::http::server::ConnGuard;
use crate::net::proxy_protocol::{self, Announced};
use crate::net::tls_server::ReloadingTls;
use crate::net::Metered;
use crate::shutdown::Shutdown;
use crate::transport::ohttp::egress::OhttpEgress;
use crate::transport::rats_tls::egress::RatsTlsEgress;
use crate::transport::{AppStream, EgressTransport, Target};

/// Builds an egress: binds its listeners and starts its transport (key manager, attested
/// certificates). Serving starts with [`EgressInstance::serve`].
pub struct EgressInstance {
    id: usize,
    metrics: InstanceMetrics,
    transport: Arc<EgressTransport>,
    so_mark: Option<u32>,
    limits: Arc<tng_config::Limits>,
    /// Bound but not yet listening: connections are refused until the egress can serve them
    /// (see [`EgressTransport::serving`]).
    listeners: Vec<(TcpSocket, Destination)>,
    /// Netfilter rules feeding the listeners; removed when serving ends.
    captures: Vec<Capture>,
    direct_forward: Arc<Vec<regex::Regex>>,
    proxy_protocol: Option<Arc<tng_config::ProxyProtocol>>,
    /// `ohttp.tls`: the listeners speak HTTPS.
    tls: Option<Arc<ReloadingTls>>,
    /// Egress hook: which connections are tunnel connections.
    hook: Option<Arc<EgressPolicy>>,
}

impl EgressInstance {
    pub async fn bind(
        config: &Egress,
        shutdown: &Shutdown,
        status: &Status,
        telemetry: &Telemetry,
    ) -> anyhow::Result<Self> {
        let id = config.id;
        let field = format!("add_egress[{id}]");
        let mut config = config.clone();
        let mut netfilter_port = None;
        if let EgressMode::Netfilter(netfilter) = &mut config.mode {
            let port = match netfilter.listen_port {
                Some(port) => port,
                None => {
                    crate::capture::netfilter::free_listen_port(std::net::Ipv4Addr::UNSPECIFIED)
                        .with_context(|| format!("{field}.netfilter: no free listen port"))?
                }
            };
            netfilter.listen_port = Some(port);
            netfilter_port = Some(port);
        }
        let config = &config;
        let metrics = telemetry.egress(id, super::labels::egress(config, netfilter_port));
        // Connections to the service are marked so the capture rules let them through.
        let so_mark = match &config.mode {
            EgressMode::Netfilter(n) => Some(n.so_mark),
            EgressMode::Mapping(_)
            | EgressMode::Hook(_)
            | EgressMode::MappingUdp(_)
            | EgressMode::NetfilterUdp(_) => None,
        };
        let transport = Arc::new(match &config.ohttp {
            Some(ohttp) => {
                let ohttp = Arc::new(
                    OhttpEgress::new(config, ohttp, so_mark, shutdown, metrics.clone()).await?,
                );
                status.add_egress(id, ohttp.keys.clone());
                EgressTransport::Ohttp(ohttp)
            }
            None => EgressTransport::RatsTls(Arc::new(
                RatsTlsEgress::new(config, so_mark, &field, shutdown, metrics.clone()).await?,
            )),
        });
        let tls = match config.ohttp.as_ref().and_then(|o| o.tls.as_ref()) {
            Some(tls) => Some(Arc::new(ReloadingTls::start(
                &format!("{field}.ohttp.tls"),
                tls,
                shutdown.clone(),
            )?)),
            None => None,
        };
        let mut listeners = Vec::new();
        let mut captures = Vec::new();
        match &config.mode {
            EgressMode::Mapping(rules) => {
                listeners.extend(crate::capture::mapping::egress(&field, rules)?);
            }
            EgressMode::Netfilter(netfilter) => {
                let (listener, capture) = crate::capture::netfilter::egress(id, netfilter)?;
                listeners.push((listener, Destination::OriginalDst));
                captures.push(capture);
            }
            EgressMode::Hook(hook) => {
                listeners.extend(crate::capture::hook::egress(&field, hook)?);
            }
            EgressMode::MappingUdp(_) | EgressMode::NetfilterUdp(_) => {
                anyhow::bail!("{field}: a UDP mode is served by the QUIC transport")
            }
        }
        let hook = match &config.mode {
            EgressMode::Hook(hook) => Some(Arc::new(EgressPolicy::new(&field, hook))),
            _ => None,
        };
        Ok(Self {
            id,
            metrics,
            transport,
            so_mark,
            limits: Arc::new(config.limits.clone()),
            listeners,
            captures,
            direct_forward: Arc::new(config.direct_forward.clone()),
            proxy_protocol: config.proxy_protocol.clone().map(Arc::new),
            tls,
            hook,
        })
    }

    /// Serves until shutdown. A `peer_shared` node listens only while it may serve (see
    /// [`keys::KeyManager::serving`]): when it stops, its listeners close — connections are
    /// refused, so a load balancer tries another node — while requests in flight finish; when
    /// it may serve again, the same addresses are bound anew.
    pub async fn serve(mut self, mut shutdown: Shutdown, readiness: Readiness) {
        let mut serving = self.transport.serving();
        let mut sockets: Vec<(Option<TcpSocket>, Option<SocketAddr>, Destination)> =
            std::mem::take(&mut self.listeners)
                .into_iter()
                .map(|(socket, destination)| {
                    let addr = socket.local_addr().ok();
                    (Some(socket), addr, destination)
                })
                .collect();
        let mut tasks = Vec::new();
        loop {
            if let Some(serving) = &mut serving {
                tokio::select! {
                    result = serving.wait_for(|may| *may) => if result.is_err() { break },
                    _ = shutdown.requested() => break,
                }
            }
            let round = match &serving {
                Some(serving) => until_paused(shutdown.clone(), serving.clone()),
                None => shutdown.clone(),
            };
            for (socket, addr, destination) in &mut sockets {
                let listener = match listen(socket.take(), *addr).await {
                    Ok(listener) => listener,
                    Err(err) => {
                        error!(egress = self.id, local = ?addr, "cannot listen: {err}");
                        continue;
                    }
                };
                tasks.push(self.accept(listener, *destination, round.clone()));
            }
            readiness.service_ready();
            match &mut serving {
                Some(serving) => tokio::select! {
                    _ = serving.wait_for(|may| !*may) => {}
                    _ = shutdown.requested() => break,
                },
                None => break,
            }
            readiness.service_unready();
            warn!(
                egress = self.id,
                "not accepting connections until this node holds the cluster's keys again"
            );
        }
        for task in tasks {
            let _ = task.await;
        }
        drop(std::mem::take(&mut self.captures));
    }

    fn accept(
        &self,
        listener: tokio::net::TcpListener,
        destination: Destination,
        stop: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let local = listener.local_addr().ok();
        let listen_port = local.map(|a| a.port()).unwrap_or(0);
        info!(egress = self.id, local = ?local, ?destination, "egress listening");
        let shared = Arc::new(Shared {
            transport: self.transport.clone(),
            direct: self.direct_forward.clone(),
            so_mark: self.so_mark,
            metrics: self.metrics.clone(),
            proxy_protocol: self.proxy_protocol.clone(),
            tls: self.tls.clone(),
            hook: self.hook.clone(),
            handshake_timeout: self.limits.header_read_timeout,
        });
        let name = format!("egress{}:{listen_port}", self.id);
        tokio::spawn(crate::http::server::accept_loop_limited(
            listener,
            stop,
            name,
            self.limits.clone(),
            Some(self.metrics.clone()),
            move |stream, _peer, guard| {
                connection(shared.clone(), stream, destination, listen_port, guard)
            },
        ))
    }
}

/// What every connection of one egress shares.
struct Shared {
    transport: Arc<EgressTransport>,
    direct: Arc<Vec<regex::Regex>>,
    so_mark: Option<u32>,
    metrics: InstanceMetrics,
    proxy_protocol: Option<Arc<tng_config::ProxyProtocol>>,
    tls: Option<Arc<ReloadingTls>>,
    hook: Option<Arc<EgressPolicy>>,
    /// For the PROXY header and the TLS handshake: both come before any request.
    handshake_timeout: std::time::Duration,
}

/// One accepted connection: where it was going, who sent it (PROXY protocol), TLS, then its
/// route — the transport, or `direct_forward` straight to the service.
async fn connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    destination: Destination,
    listen_port: u16,
    mut guard: ConnGuard,
) {
    let upstream = match destination.resolve(&stream, listen_port) {
        Ok(upstream) => upstream,
        Err(err) => return warn!("dropping connection: {err}"),
    };
    if let (Some(hook), Ok(local)) = (&shared.hook, stream.local_addr()) {
        if !hook.encrypted(local, guard.peer()) {
            // A local client of the application, not a tunnel (capture_local_traffic false).
            let stream = Metered::new(stream, shared.metrics.connection());
            return crate::exit::pipe(stream, bytes::Bytes::new(), Target::from(upstream), None)
                .await;
        }
    }
    if let Some(proxy_protocol) = &shared.proxy_protocol {
        let Some(peer) = guard.peer() else { return };
        if !proxy_protocol.trusts(peer.ip()) {
            return warn!(
                %peer,
                "connection refused: the peer is not one of proxy_protocol.trusted_peers"
            );
        }
        match proxy_protocol::read(&mut stream, shared.handshake_timeout).await {
            Ok(Announced::Client(client)) => {
                debug!(%client, "client announced by the PROXY protocol header");
                guard.set_peer(client);
            }
            Ok(Announced::Peer) => {}
            Err(err) => return warn!(%peer, "connection refused: {err}"),
        }
    }
    match &shared.tls {
        Some(tls) => {
            let handshake = tls.acceptor().accept(stream);
            match tokio::time::timeout(shared.handshake_timeout, handshake).await {
                Ok(Ok(stream)) => dispatch(&shared, stream, upstream, guard).await,
                Ok(Err(err)) => debug!("TLS handshake failed: {err}"),
                Err(_) => debug!("no TLS handshake within {:?}", shared.handshake_timeout),
            }
        }
        None => dispatch(&shared, stream, upstream, guard).await,
    }
}

async fn dispatch<S: AppStream>(
    shared: &Shared,
    stream: S,
    upstream: SocketAddr,
    guard: ConnGuard,
) {
    match direct_forward::route(stream, shared.direct.clone()).await {
        Some(Route::Tunnel(stream)) => {
            shared
                .transport
                .clone()
                .serve(stream, upstream, guard)
                .await
        }
        Some(Route::Direct(stream)) => {
            let target = Target::from(upstream);
            let stream = Metered::new(stream, shared.metrics.connection());
            crate::exit::pipe(stream, bytes::Bytes::new(), target, shared.so_mark).await
        }
        None => {}
    }
}

/// Listens on the socket bound at start-up, or, after a pause, on a new one bound to the same
/// address (the previous listener closes as its accept loop stops, so a few retries cover
/// the moment it is still open).
async fn listen(
    socket: Option<TcpSocket>,
    addr: Option<SocketAddr>,
) -> std::io::Result<tokio::net::TcpListener> {
    if let Some(socket) = socket {
        return socket.listen(crate::net::LISTEN_BACKLOG);
    }
    let addr = addr.ok_or_else(|| std::io::Error::other("listener address unknown"))?;
    let mut attempt = 0;
    loop {
        match crate::net::bind_unlistened(addr) {
            Ok(socket) => return socket.listen(crate::net::LISTEN_BACKLOG),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && attempt < 40 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// A stop signal for one serving round: process shutdown, or the node ceasing to serve.
fn until_paused(
    mut shutdown: Shutdown,
    mut serving: tokio::sync::watch::Receiver<bool>,
) -> Shutdown {
    let (trigger, round) = crate::shutdown::channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.requested() => {}
            _ = serving.wait_for(|may| !*may) => {}
        }
        trigger.trigger();
    });
    round
}
