//! The egress: the OHTTP gateway in front of the service. It answers key-config requests,
//! opens tunnel requests, forwards them in plaintext to the service and seals the responses.
//!
//! Request lifecycle (one function per phase, in this order):
//! 1. [`router::route`] — CORS preflight, then dispatch on `x-tng-ohttp-api`.
//! 2. [`key_config::serve`] or [`tunnel::serve`] — the API itself.
//! 3. [`tunnel`] internally: `read_metadata` → `select_key` → `open_request` →
//!    `forward` (to the service) → `seal_response`.
//! 4. [`router::response_filter`] — `server` header and CORS headers on every answer.

pub mod background_check;
pub mod cors;
pub mod direct_forward;
pub mod freshness;
pub mod key_config;
pub mod keys;
pub mod router;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tng_config::{Egress, EgressMode};
use tng_ohttp::passthrough::HeaderPassthrough;
use tokio::net::TcpSocket;
use tracing::{error, info, warn};

use crate::capture::{Capture, Destination};
use crate::http::client::{self, ConnectOptions, HttpClient};
use crate::runtime::{Readiness, Status};
use crate::shutdown::Shutdown;

/// Everything a request handler needs, shared by all connections of one egress.
pub struct EgressContext {
    pub id: usize,
    pub keys: Arc<keys::KeyManager>,
    /// Present when this egress proves its TEE (`attest`) in key-config answers.
    pub attester: Option<Arc<tng_attest::Attester>>,
    /// Present when this egress requires attested ingresses (`verify`).
    pub verifier: Option<Arc<tng_attest::Verifier>>,
    /// The last passport answer, reused for `attest.refresh_interval` while the advertised key
    /// config is unchanged (every client may receive the same token).
    pub passport_cache: std::sync::Mutex<Option<key_config::CachedPassport>>,
    pub backend: HttpClient,
    pub cors: Option<cors::CorsPolicy>,
    pub request_passthrough: HeaderPassthrough,
    pub response_passthrough: HeaderPassthrough,
    pub limits: Arc<tng_config::Limits>,
    /// Present unless `limits.replay_window` is 0.
    pub replay: Option<freshness::ReplayGuard>,
}

/// Builds an egress: binds its listeners and starts its key manager. Serving starts with
/// [`EgressInstance::serve`].
pub struct EgressInstance {
    context: Arc<EgressContext>,
    /// Bound but not yet listening: connections are refused until the egress can serve them
    /// (see [`keys::KeyManager::serving`]).
    listeners: Vec<(TcpSocket, Destination)>,
    /// Netfilter rules feeding the listeners; removed when serving ends.
    captures: Vec<Capture>,
    direct_forward: Arc<Vec<regex::Regex>>,
}

impl EgressInstance {
    pub async fn bind(
        config: &Egress,
        shutdown: &Shutdown,
        status: &Status,
    ) -> anyhow::Result<Self> {
        let ohttp = config.ohttp.as_ref().with_context(|| {
            format!(
                "add_egress[{}]: rats_tls transport (no `ohttp`) is not supported yet",
                config.id
            )
        })?;
        let cors = ohttp
            .cors
            .as_ref()
            .map(cors::CorsPolicy::new)
            .transpose()
            .with_context(|| format!("add_egress[{}].ohttp.cors", config.id))?;
        let so_mark = match &config.mode {
            EgressMode::Netfilter(n) => Some(n.so_mark),
            EgressMode::Mapping(_) => None,
        };
        let key_field = format!("add_egress[{}].ohttp.key", config.id);
        let keys = keys::KeyManager::start(&ohttp.key, &key_field, so_mark, shutdown.clone())
            .await
            .with_context(|| key_field.clone())?;
        let attester = config
            .ra
            .attest
            .as_ref()
            .map(|attest| {
                crate::attestation::attester(&format!("add_egress[{}]", config.id), attest, so_mark)
            })
            .transpose()?;
        let verifier = match &config.ra.verify {
            Some(verify) => Some(
                crate::attestation::verifier(
                    &format!("add_egress[{}]", config.id),
                    verify,
                    so_mark,
                )
                .await?,
            ),
            None => None,
        };
        let context = Arc::new(EgressContext {
            id: config.id,
            keys: keys.clone(),
            attester,
            verifier,
            passport_cache: std::sync::Mutex::new(None),
            // Connections to the service are marked so the capture rules let them through.
            backend: client::build_limited(ConnectOptions { so_mark, tls: None }, &config.limits),
            cors,
            request_passthrough: crate::runtime::passthrough(
                &ohttp.header_passthrough.request_headers,
            ),
            response_passthrough: crate::runtime::passthrough(
                &ohttp.header_passthrough.response_headers,
            ),
            limits: Arc::new(config.limits.clone()),
            replay: config.limits.replay_window.map(freshness::ReplayGuard::new),
        });
        status.add_egress(config.id, keys);
        let mut listeners = Vec::new();
        let mut captures = Vec::new();
        match &config.mode {
            EgressMode::Mapping(rules) => {
                for rule in rules {
                    for (listen, upstream) in rule.pairs() {
                        let listener = crate::capture::bind_unlistened(SocketAddr::V4(listen))
                            .with_context(|| {
                                format!("add_egress[{}]: cannot listen on {listen}", config.id)
                            })?;
                        listeners.push((listener, Destination::Fixed(SocketAddr::V4(upstream))));
                    }
                }
            }
            EgressMode::Netfilter(netfilter) => {
                let (listener, capture) = crate::capture::egress_netfilter(config.id, netfilter)?;
                listeners.push((listener, Destination::OriginalDst));
                captures.push(capture);
            }
        }
        Ok(Self {
            context,
            listeners,
            captures,
            direct_forward: Arc::new(config.direct_forward.clone()),
        })
    }

    /// Serves until shutdown. A `peer_shared` node listens only while it may serve (see
    /// [`keys::KeyManager::serving`]): when it stops, its listeners close — connections are
    /// refused, so a load balancer tries another node — while requests in flight finish; when
    /// it may serve again, the same addresses are bound anew.
    pub async fn serve(mut self, mut shutdown: Shutdown, readiness: Readiness) {
        let mut serving = self.context.keys.serving();
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
                        error!(egress = self.context.id, local = ?addr, "cannot listen: {err}");
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
                egress = self.context.id,
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
        info!(egress = self.context.id, local = ?local, ?destination, "egress listening");
        let context = self.context.clone();
        let direct = self.direct_forward.clone();
        let name = format!("egress{}:{listen_port}", self.context.id);
        tokio::spawn(crate::http::server::accept_loop_limited(
            listener,
            stop,
            name,
            self.context.limits.clone(),
            move |stream, _peer, watcher| {
                let (context, direct) = (context.clone(), direct.clone());
                async move {
                    match destination.resolve(&stream, listen_port) {
                        Ok(upstream) => {
                            direct_forward::handle_connection(
                                stream, upstream, context, direct, watcher,
                            )
                            .await
                        }
                        Err(err) => warn!("dropping connection: {err}"),
                    }
                }
            },
        ))
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
        return socket.listen(crate::capture::LISTEN_BACKLOG);
    }
    let addr = addr.ok_or_else(|| std::io::Error::other("listener address unknown"))?;
    let mut attempt = 0;
    loop {
        match crate::capture::bind_unlistened(addr) {
            Ok(socket) => return socket.listen(crate::capture::LISTEN_BACKLOG),
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
