//! One `add_ingress` entry running: its capture mode's listeners feed its transport.

use std::sync::Arc;

use anyhow::Context;
use tng_config::{Ingress, IngressMode};
use tng_telemetry::{InstanceMetrics, Telemetry};
use tokio::net::TcpListener;
use tracing::{info, warn, Instrument, Span};

use crate::capture::http_proxy::HttpProxy;
use crate::capture::socks5::Socks5;
use crate::capture::{Capture, Destination, Entry};
use crate::control::{Readiness, Status};
use crate::http::client::{self, ConnectOptions};
use crate::http::server::ConnGuard;
use crate::net::Metered;
use crate::shutdown::Shutdown;
use crate::transport::ohttp::ingress::OhttpIngress;
use crate::transport::rats_tls::ingress::RatsTlsIngress;
use crate::transport::{IngressTransport, Target};

pub struct IngressInstance {
    id: usize,
    metrics: InstanceMetrics,
    transport: Arc<IngressTransport>,
    limits: Arc<tng_config::Limits>,
    listeners: Vec<(TcpListener, Entry)>,
    /// Netfilter rules feeding the listeners; removed when serving ends.
    captures: Vec<Capture>,
}

impl IngressInstance {
    pub async fn bind(
        config: &Ingress,
        status: &Status,
        telemetry: &Telemetry,
    ) -> anyhow::Result<Self> {
        let id = config.id;
        let field = format!("add_ingress[{id}]");
        let mut config = config.clone();
        let mut netfilter_port = None;
        if let IngressMode::Netfilter(netfilter) = &mut config.mode {
            let port = match netfilter.listen_port {
                Some(port) => port,
                None => crate::capture::netfilter::free_listen_port(std::net::Ipv4Addr::LOCALHOST)
                    .with_context(|| format!("{field}.netfilter: no free listen port"))?,
            };
            netfilter.listen_port = Some(port);
            netfilter_port = Some(port);
        }
        let config = &config;
        let metrics = telemetry.ingress(id, super::labels::ingress(config, netfilter_port));
        // Tunnel connections are marked so the capture rules let them through.
        let so_mark = match &config.mode {
            IngressMode::Netfilter(n) => Some(n.so_mark),
            _ => None,
        };
        let transport = Arc::new(match &config.ohttp {
            Some(ohttp) => {
                let ohttp =
                    Arc::new(OhttpIngress::new(config, ohttp, so_mark, metrics.clone()).await?);
                status.add_ingress(id, ohttp.keys.clone());
                IngressTransport::Ohttp(ohttp)
            }
            None => IngressTransport::RatsTls(Arc::new(
                RatsTlsIngress::new(config, so_mark, &field, metrics.clone()).await?,
            )),
        });
        let mut listeners = Vec::new();
        let mut captures = Vec::new();
        match &config.mode {
            IngressMode::Mapping(rules) => {
                for (listener, destination) in
                    crate::capture::mapping::ingress(&field, rules).await?
                {
                    listeners.push((listener, Entry::Transparent(destination)));
                }
            }
            IngressMode::Netfilter(netfilter) => {
                let (listener, capture) = crate::capture::netfilter::ingress(id, netfilter)?;
                listeners.push((listener, Entry::Transparent(Destination::LocalAddress)));
                captures.push(capture);
            }
            IngressMode::MappingUdp(_) | IngressMode::NetfilterUdp(_) => {
                anyhow::bail!("{field}: a UDP mode is served by the QUIC transport")
            }
            IngressMode::HttpProxy(proxy) => {
                let listener =
                    bind_proxy(&proxy.proxy_listen, &format!("{field}.http_proxy")).await?;
                let proxy = HttpProxy {
                    transport: transport.clone(),
                    metrics: metrics.clone(),
                    filters: proxy.dst_filters.clone(),
                    direct: client::build(ConnectOptions::default()),
                };
                listeners.push((listener, Entry::HttpProxy(Arc::new(proxy))));
            }
            IngressMode::Hook(hook) => {
                let listener = crate::capture::hook::ingress(&field, hook).await?;
                // The library already chose what is captured: everything that arrives here
                // goes through the tunnel.
                let proxy = HttpProxy {
                    transport: transport.clone(),
                    metrics: metrics.clone(),
                    filters: Vec::new(),
                    direct: client::build(ConnectOptions::default()),
                };
                listeners.push((listener, Entry::HttpProxy(Arc::new(proxy))));
            }
            IngressMode::Socks5(socks) => {
                let listener = bind_proxy(&socks.proxy_listen, &format!("{field}.socks5")).await?;
                let socks = Socks5 {
                    transport: transport.clone(),
                    filters: socks.dst_filters.clone(),
                    auth: socks.auth.clone(),
                };
                listeners.push((listener, Entry::Socks5(Arc::new(socks))));
            }
        }
        Ok(Self {
            id,
            metrics,
            transport,
            limits: Arc::new(config.limits.clone()),
            listeners,
            captures,
        })
    }

    pub async fn serve(self, shutdown: Shutdown, readiness: Readiness) {
        let mut tasks = Vec::new();
        for (listener, entry) in self.listeners {
            let local = listener.local_addr().ok();
            let listen_port = local.map(|a| a.port()).unwrap_or(0);
            info!(ingress = self.id, local = ?local, "ingress listening");
            let (transport, metrics) = (self.transport.clone(), self.metrics.clone());
            let name = format!("ingress{}:{listen_port}", self.id);
            tasks.push(tokio::spawn(crate::http::server::accept_loop_limited(
                listener,
                shutdown.clone(),
                name,
                self.limits.clone(),
                Some(metrics.clone()),
                move |stream, _peer, guard| {
                    let (transport, entry) = (transport.clone(), entry.clone());
                    connection(
                        transport,
                        entry,
                        stream,
                        listen_port,
                        guard,
                        metrics.clone(),
                    )
                },
            )));
        }
        readiness.service_ready();
        for task in tasks {
            let _ = task.await;
        }
        drop(self.captures);
    }
}

/// One accepted application connection, from its capture mode to its transport.
async fn connection(
    transport: Arc<IngressTransport>,
    entry: Entry,
    stream: tokio::net::TcpStream,
    listen_port: u16,
    guard: ConnGuard,
    metrics: InstanceMetrics,
) {
    match entry {
        Entry::Transparent(destination) => {
            let target = match destination.resolve(&stream, listen_port) {
                Ok(dst) => Target::from(dst),
                Err(err) => {
                    metrics.connection().failed();
                    return warn!("dropping connection: {err}");
                }
            };
            let mut unit = transport.unit(&metrics, guard.peer(), &target);
            let span = unit.span().cloned().unwrap_or_else(Span::current);
            async {
                match transport.open(&target).await {
                    Ok(tunnel) => {
                        unit.set_attested(transport.verifies());
                        tunnel.serve(Metered::new(stream, unit), Some(guard)).await
                    }
                    // Nothing of the application was read: it sees its connection closed.
                    Err(err) => {
                        unit.failed_with(err.outcome());
                        warn!(%target, "closing the application connection: {err}")
                    }
                }
            }
            .instrument(span)
            .await
        }
        Entry::HttpProxy(proxy) => {
            let client = guard.peer();
            crate::http::server::serve_connection_with_upgrades(stream, guard, move |req| {
                proxy.clone().handle(req, client)
            })
            .await
        }
        Entry::Socks5(socks) => {
            let client = guard.peer();
            socks.handle(stream, client, metrics.connection()).await
        }
    }
}

async fn bind_proxy(endpoint: &tng_config::Endpoint, field: &str) -> anyhow::Result<TcpListener> {
    // The host is used verbatim, so a DNS name works and an IPv6 literal needs brackets.
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    TcpListener::bind(&addr)
        .await
        .with_context(|| format!("{field}.proxy_listen: cannot listen on {addr}"))
}
