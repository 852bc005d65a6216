//! One UDP `add_ingress` / `add_egress` entry running: its datagram source feeds the QUIC
//! transport.

use std::net::SocketAddr;
use std::sync::Arc;

use tng_config::{Egress, EgressMode, Ingress, IngressMode};
use tng_telemetry::Telemetry;
use tracing::info;

use crate::capture::{udp_mapping, udp_netfilter, Capture};
use crate::control::Readiness;
use crate::shutdown::Shutdown;
use crate::transport::quic::egress::QuicEgress;
use crate::transport::quic::ingress::{FlowTable, QuicIngress};

pub struct UdpIngressInstance {
    id: usize,
    transport: Arc<QuicIngress>,
    source: IngressSource,
}

enum IngressSource {
    Mapping {
        socket: Arc<tokio::net::UdpSocket>,
        dst: crate::transport::quic::ingress::FlowDst,
        reply: Arc<udp_mapping::ListenerReply>,
    },
    Netfilter {
        socket: tokio::net::UdpSocket,
        capture: Capture,
        reply: Arc<udp_netfilter::SpoofedReply>,
    },
}

impl UdpIngressInstance {
    pub async fn bind(config: &Ingress, telemetry: &Telemetry) -> anyhow::Result<Self> {
        let id = config.id;
        let field = format!("add_ingress[{id}]");
        let mut config = config.clone();
        let mut listen_port = None;
        if let IngressMode::NetfilterUdp(n) = &mut config.mode {
            let port = chosen_port(n, std::net::Ipv4Addr::LOCALHOST, &field)?;
            n.listen_port = Some(port);
            listen_port = Some(port);
        }
        let config = &config;
        let metrics = telemetry.ingress(id, super::labels::ingress(config, listen_port));
        match &config.mode {
            IngressMode::MappingUdp(mapping) => {
                let transport = Arc::new(
                    QuicIngress::new(
                        config,
                        mapping.idle_timeout,
                        None,
                        &field,
                        "mapping_udp",
                        metrics,
                    )
                    .await?,
                );
                let socket = Arc::new(udp_mapping::bind_ingress(&field, mapping).await?);
                let dst = udp_mapping::ingress_destination(mapping);
                let reply = udp_mapping::ListenerReply::new(socket.clone())
                    .map_err(|e| anyhow::anyhow!("{field}.mapping_udp.in: {e}"))?;
                Ok(Self {
                    id,
                    transport,
                    source: IngressSource::Mapping {
                        socket,
                        dst,
                        reply: Arc::new(reply),
                    },
                })
            }
            IngressMode::NetfilterUdp(netfilter) => {
                let transport = Arc::new(
                    QuicIngress::new(
                        config,
                        netfilter.idle_timeout,
                        Some(netfilter.so_mark),
                        &field,
                        "netfilter_udp",
                        metrics,
                    )
                    .await?,
                );
                let sender = spoofing_sender(&field, netfilter.so_mark)?;
                let (socket, capture) = udp_netfilter::bind_ingress(id, netfilter)?;
                Ok(Self {
                    id,
                    transport,
                    source: IngressSource::Netfilter {
                        socket,
                        capture,
                        reply: Arc::new(udp_netfilter::SpoofedReply(sender)),
                    },
                })
            }
            _ => anyhow::bail!("{field}: not a UDP mode"),
        }
    }

    pub async fn serve(self, shutdown: Shutdown, readiness: Readiness) {
        match self.source {
            IngressSource::Mapping { socket, dst, reply } => {
                let local = socket
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                info!(ingress = self.id, %local, "ingress listening (mapping_udp)");
                let table = FlowTable::new(self.transport.clone(), reply, local, shutdown.clone());
                readiness.service_ready();
                udp_mapping::serve_ingress(socket, dst, table, shutdown).await;
            }
            IngressSource::Netfilter {
                socket,
                capture,
                reply,
            } => {
                let local = socket
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                info!(ingress = self.id, %local, "ingress listening (netfilter_udp)");
                let table = FlowTable::new(self.transport.clone(), reply, local, shutdown.clone());
                readiness.service_ready();
                udp_netfilter::serve_ingress(socket, table, shutdown).await;
                // Only now that nothing reads the listener: until here every captured
                // datagram reached us.
                drop(capture);
            }
        }
    }
}

/// The TPROXY listener's port: the configured one, or a free one outside the capture ranges.
fn chosen_port(
    n: &tng_config::NetfilterUdp,
    ip: std::net::Ipv4Addr,
    field: &str,
) -> anyhow::Result<u16> {
    match n.listen_port {
        Some(port) => Ok(port),
        None => udp_netfilter::free_listen_port(ip, &n.capture_dst)
            .map_err(|e| anyhow::anyhow!("{field}.netfilter_udp: no free listen port: {e}")),
    }
}

fn spoofing_sender(
    field: &str,
    so_mark: u32,
) -> anyhow::Result<Arc<tng_capture::udp_socket::SpoofingSender>> {
    let sender = tng_capture::udp_socket::SpoofingSender::new(so_mark).map_err(|e| {
        anyhow::anyhow!("{field}.netfilter_udp: cannot open the raw socket replies leave from (needs CAP_NET_RAW): {e}")
    })?;
    Ok(Arc::new(sender))
}

pub struct UdpEgressInstance {
    id: usize,
    transport: Arc<QuicEgress>,
    source: EgressSource,
}

enum EgressSource {
    Mapping {
        endpoint: quinn::Endpoint,
        local: SocketAddr,
        backend: Arc<udp_mapping::MappingBackend>,
    },
    Netfilter {
        socket: tokio::net::UdpSocket,
        capture: Capture,
        dispatcher: udp_netfilter::egress::Dispatcher,
    },
}

impl UdpEgressInstance {
    pub async fn bind(config: &Egress, telemetry: &Telemetry) -> anyhow::Result<Self> {
        let id = config.id;
        let field = format!("add_egress[{id}]");
        let mut config = config.clone();
        let mut listen_port = None;
        if let EgressMode::NetfilterUdp(n) = &mut config.mode {
            let port = chosen_port(n, std::net::Ipv4Addr::UNSPECIFIED, &field)?;
            n.listen_port = Some(port);
            listen_port = Some(port);
        }
        let config = &config;
        let metrics = telemetry.egress(id, super::labels::egress(config, listen_port));
        let (idle, so_mark, streams, mode) = match &config.mode {
            EgressMode::MappingUdp(m) => (m.idle_timeout, None, true, "mapping_udp"),
            EgressMode::NetfilterUdp(n) => {
                (n.idle_timeout, Some(n.so_mark), false, "netfilter_udp")
            }
            _ => anyhow::bail!("{field}: not a UDP mode"),
        };
        let transport =
            Arc::new(QuicEgress::new(config, idle, so_mark, streams, &field, mode, metrics).await?);
        let server = transport
            .server_config()
            .await
            .map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
        let source = match &config.mode {
            EgressMode::MappingUdp(mapping) => {
                let socket = udp_mapping::bind_egress(&field, mapping)?;
                let local = socket.local_addr()?;
                let runtime =
                    quinn::default_runtime().ok_or_else(|| anyhow::anyhow!("no async runtime"))?;
                let endpoint = quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some(server),
                    socket,
                    runtime,
                )?;
                EgressSource::Mapping {
                    endpoint,
                    local,
                    backend: Arc::new(udp_mapping::MappingBackend {
                        host: mapping.out_host.clone(),
                        port: mapping.out_port,
                    }),
                }
            }
            EgressMode::NetfilterUdp(netfilter) => {
                let sender = spoofing_sender(&field, netfilter.so_mark)?;
                let (socket, capture) = udp_netfilter::bind_egress(id, netfilter)?;
                EgressSource::Netfilter {
                    socket,
                    capture,
                    dispatcher: udp_netfilter::egress::Dispatcher {
                        transport: transport.clone(),
                        server,
                        sender,
                        idle,
                    },
                }
            }
            _ => anyhow::bail!("{field}: not a UDP mode"),
        };
        Ok(Self {
            id,
            transport,
            source,
        })
    }

    pub async fn serve(self, shutdown: Shutdown, readiness: Readiness) {
        match self.source {
            EgressSource::Mapping {
                endpoint,
                local,
                backend,
            } => {
                info!(egress = self.id, %local, "egress listening (mapping_udp)");
                readiness.service_ready();
                self.transport
                    .serve(endpoint, backend, local, shutdown, None)
                    .await;
            }
            EgressSource::Netfilter {
                socket,
                capture,
                dispatcher,
            } => {
                let local = socket
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                info!(egress = self.id, %local, "egress listening (netfilter_udp)");
                readiness.service_ready();
                dispatcher.serve(socket, shutdown).await;
                drop(capture);
            }
        }
    }
}

/// What [`super::start_udp`] needs of a UDP entry to run it on its own thread.
pub trait UdpEntry: Sized + 'static {
    type Config: Send + 'static;
    fn bind(
        config: &Self::Config,
        telemetry: &Telemetry,
    ) -> impl std::future::Future<Output = anyhow::Result<Self>>;
    fn serve(
        self,
        shutdown: Shutdown,
        readiness: Readiness,
    ) -> impl std::future::Future<Output = ()>;
}

impl UdpEntry for UdpIngressInstance {
    type Config = Ingress;
    fn bind(
        config: &Ingress,
        telemetry: &Telemetry,
    ) -> impl std::future::Future<Output = anyhow::Result<Self>> {
        UdpIngressInstance::bind(config, telemetry)
    }
    fn serve(
        self,
        shutdown: Shutdown,
        readiness: Readiness,
    ) -> impl std::future::Future<Output = ()> {
        UdpIngressInstance::serve(self, shutdown, readiness)
    }
}

impl UdpEntry for UdpEgressInstance {
    type Config = Egress;
    fn bind(
        config: &Egress,
        telemetry: &Telemetry,
    ) -> impl std::future::Future<Output = anyhow::Result<Self>> {
        UdpEgressInstance::bind(config, telemetry)
    }
    fn serve(
        self,
        shutdown: Shutdown,
        readiness: Readiness,
    ) -> impl std::future::Future<Output = ()> {
        UdpEgressInstance::serve(self, shutdown, readiness)
    }
}
