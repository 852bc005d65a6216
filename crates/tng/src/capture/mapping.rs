//! The `mapping` mode: each `in` address is a listener whose connections go to its `out`.

use std::net::SocketAddr;

use anyhow::Context;
use tng_config::MappingRule;
use tokio::net::{TcpListener, TcpSocket};

use super::Destination;

/// Ingress listeners, listening at once (the ingress serves as soon as it is bound).
pub async fn ingress(
    field: &str,
    rules: &[MappingRule],
) -> anyhow::Result<Vec<(TcpListener, Destination)>> {
    let mut listeners = Vec::new();
    for rule in rules {
        for (listen, out) in rule.pairs() {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("{field}: cannot listen on {listen}"))?;
            listeners.push((listener, Destination::Fixed(SocketAddr::V4(out))));
        }
    }
    Ok(listeners)
}

/// Egress sockets, bound but not listening: the egress listens once it can serve.
pub fn egress(field: &str, rules: &[MappingRule]) -> anyhow::Result<Vec<(TcpSocket, Destination)>> {
    let mut listeners = Vec::new();
    for rule in rules {
        for (listen, upstream) in rule.pairs() {
            let socket = crate::net::bind_unlistened(SocketAddr::V4(listen))
                .with_context(|| format!("{field}: cannot listen on {listen}"))?;
            listeners.push((socket, Destination::Fixed(SocketAddr::V4(upstream))));
        }
    }
    Ok(listeners)
}
