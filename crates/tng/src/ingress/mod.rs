//! The ingress: the OHTTP client in front of the application. It takes the application's plain
//! HTTP requests, seals each one to the egress's current key and unseals the responses.
//! [`pipeline`] holds the per-request lifecycle; this module wires listeners to it.

pub mod key_cache;
pub mod pipeline;
pub mod replay;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tng_config::{Ingress, IngressMode, PathDefault};
use tng_ohttp::passthrough::HeaderPassthrough;
use tng_ohttp::path_rewrite::{self, PathRewriter};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::capture::{Capture, Destination};
use crate::http::client::{self, ConnectOptions, HttpClient};
use crate::proxy::http_proxy::HttpProxy;
use crate::proxy::socks5::Socks5;
use crate::runtime::{Readiness, Status};
use crate::shutdown::Shutdown;

/// Shared by every connection of one ingress.
pub struct IngressContext {
    pub id: usize,
    pub rewriter: PathRewriter,
    pub scheme: &'static str,
    pub client: HttpClient,
    pub keys: Arc<key_cache::KeyCache>,
    pub request_passthrough: HeaderPassthrough,
    pub response_passthrough: HeaderPassthrough,
    pub limits: Arc<tng_config::Limits>,
}

/// What a listener's connections are: transparent (the destination is known from the socket or
/// the mapping) or a proxy protocol that names the destination itself.
enum Entry {
    Transparent(Destination),
    HttpProxy(Arc<HttpProxy>),
    Socks5(Arc<Socks5>),
}

pub struct IngressInstance {
    context: Arc<IngressContext>,
    listeners: Vec<(TcpListener, Entry)>,
    /// Netfilter rules feeding the listeners; removed when serving ends.
    captures: Vec<Capture>,
}

impl IngressInstance {
    pub async fn bind(config: &Ingress, status: &Status) -> anyhow::Result<Self> {
        let id = config.id;
        let ohttp = config.ohttp.as_ref().with_context(|| {
            format!("add_ingress[{id}]: rats_tls transport (no `ohttp`) is not supported yet")
        })?;
        let rules: Vec<(String, String)> = ohttp
            .path_rewrites
            .iter()
            .map(|r| (r.match_regex.clone(), r.substitution.clone()))
            .collect();
        let default = match ohttp.path_default {
            PathDefault::Root => path_rewrite::PathDefault::Root,
            PathDefault::Original => path_rewrite::PathDefault::Original,
        };
        let rewriter = PathRewriter::new(&rules, default).map_err(|e| {
            anyhow::anyhow!(
                "add_ingress[{id}].ohttp.path_rewrites[{}]: {}",
                e.index,
                e.message
            )
        })?;
        let tls = if ohttp.tls {
            Some(
                client::tls_config(&ohttp.tls_ca_certs)
                    .with_context(|| format!("add_ingress[{id}].ohttp.tls_ca_certs"))?,
            )
        } else {
            None
        };
        // Outer connections are marked so the capture rules let them through.
        let so_mark = match &config.mode {
            IngressMode::Netfilter(n) => Some(n.so_mark),
            _ => None,
        };
        let http_client = client::build_limited(
            ConnectOptions {
                so_mark,
                tls: tls.clone(),
            },
            &config.limits,
        );
        let verifier = match &config.ra.verify {
            Some(verify) => Some(
                crate::attestation::verifier(&format!("add_ingress[{id}]"), verify, so_mark)
                    .await?,
            ),
            None => None,
        };
        let attester = config
            .ra
            .attest
            .as_ref()
            .map(|attest| {
                crate::attestation::attester(&format!("add_ingress[{id}]"), attest, so_mark)
            })
            .transpose()?;
        let keys = Arc::new(key_cache::KeyCache::new(
            http_client.clone(),
            verifier,
            attester,
        ));
        status.add_ingress(id, keys.clone());
        let context = Arc::new(IngressContext {
            id,
            rewriter,
            scheme: if tls.is_some() { "https" } else { "http" },
            client: http_client,
            keys,
            request_passthrough: crate::runtime::passthrough(
                &ohttp.header_passthrough.request_headers,
            ),
            response_passthrough: crate::runtime::passthrough(
                &ohttp.header_passthrough.response_headers,
            ),
            limits: Arc::new(config.limits.clone()),
        });
        let mut listeners = Vec::new();
        let mut captures = Vec::new();
        match &config.mode {
            IngressMode::Mapping(rules) => {
                for rule in rules {
                    for (listen, out) in rule.pairs() {
                        let listener = TcpListener::bind(listen).await.with_context(|| {
                            format!("add_ingress[{id}]: cannot listen on {listen}")
                        })?;
                        listeners.push((
                            listener,
                            Entry::Transparent(Destination::Fixed(SocketAddr::V4(out))),
                        ));
                    }
                }
            }
            IngressMode::Netfilter(netfilter) => {
                let (listener, capture) = crate::capture::ingress_netfilter(id, netfilter)?;
                listeners.push((listener, Entry::Transparent(Destination::LocalAddress)));
                captures.push(capture);
            }
            IngressMode::HttpProxy(proxy) => {
                let listener = bind_proxy(
                    &proxy.proxy_listen,
                    &format!("add_ingress[{id}].http_proxy"),
                )
                .await?;
                let proxy = HttpProxy {
                    context: context.clone(),
                    filters: proxy.dst_filters.clone(),
                    direct: client::build(ConnectOptions::default()),
                };
                listeners.push((listener, Entry::HttpProxy(Arc::new(proxy))));
            }
            IngressMode::Socks5(socks) => {
                let listener =
                    bind_proxy(&socks.proxy_listen, &format!("add_ingress[{id}].socks5")).await?;
                let socks = Socks5 {
                    context: context.clone(),
                    filters: socks.dst_filters.clone(),
                    auth: socks.auth.clone(),
                };
                listeners.push((listener, Entry::Socks5(Arc::new(socks))));
            }
        }
        Ok(Self {
            context,
            listeners,
            captures,
        })
    }

    pub async fn serve(self, shutdown: Shutdown, readiness: Readiness) {
        let mut tasks = Vec::new();
        for (listener, entry) in self.listeners {
            let local = listener.local_addr().ok();
            let listen_port = local.map(|a| a.port()).unwrap_or(0);
            info!(ingress = self.context.id, local = ?local, "ingress listening");
            let context = self.context.clone();
            let name = format!("ingress{}:{listen_port}", self.context.id);
            tasks.push(tokio::spawn(crate::http::server::accept_loop_limited(
                listener,
                shutdown.clone(),
                name,
                self.context.limits.clone(),
                move |stream, _peer: SocketAddr, watcher| {
                    let context = context.clone();
                    let entry = match &entry {
                        Entry::Transparent(destination) => Entry::Transparent(*destination),
                        Entry::HttpProxy(proxy) => Entry::HttpProxy(proxy.clone()),
                        Entry::Socks5(socks) => Entry::Socks5(socks.clone()),
                    };
                    async move {
                        let destination = match entry {
                            Entry::Transparent(destination) => destination,
                            Entry::HttpProxy(proxy) => {
                                return crate::http::server::serve_connection_with_upgrades(
                                    stream,
                                    watcher,
                                    move |req| proxy.clone().handle(req),
                                )
                                .await
                            }
                            Entry::Socks5(socks) => return socks.handle(stream).await,
                        };
                        let authority = match destination.resolve(&stream, listen_port) {
                            Ok(dst) => dst.to_string(),
                            Err(err) => {
                                warn!("dropping connection: {err}");
                                return;
                            }
                        };
                        crate::http::server::serve_connection(stream, Some(watcher), move |req| {
                            pipeline::handle(context.clone(), authority.clone(), req)
                        })
                        .await
                    }
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

async fn bind_proxy(endpoint: &tng_config::Endpoint, field: &str) -> anyhow::Result<TcpListener> {
    // The host is used verbatim, so a DNS name works and an IPv6 literal needs brackets.
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    TcpListener::bind(&addr)
        .await
        .with_context(|| format!("{field}.proxy_listen: cannot listen on {addr}"))
}

/// A client error with its whole cause chain: hyper's top-level message alone ("client
/// error (Connect)") does not tell an operator what happened.
pub fn describe_client_error(err: &hyper_util::client::legacy::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Whether the error chain says the peer did not answer in time.
pub fn is_timeout(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<client::ConnectTimeout>() {
            return true;
        }
        source = cause.source();
    }
    false
}
