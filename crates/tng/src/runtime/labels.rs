//! The metric labels of each entry (observability spec §2.2), fixed when the entry is built.

use tng_config::{Egress, EgressMode, Endpoint, Ingress, IngressMode, MappingRule};
use tng_telemetry::{Endpoints, InstanceLabels, Transport};

pub fn ingress(config: &Ingress, netfilter_port: Option<u16>) -> InstanceLabels {
    let (mode, endpoints) = match &config.mode {
        IngressMode::Mapping(rules) => ("mapping", in_out(rules)),
        IngressMode::HttpProxy(proxy) => ("http_proxy", proxy_listen(&proxy.proxy_listen)),
        IngressMode::Socks5(socks) => ("socks5", proxy_listen(&socks.proxy_listen)),
        IngressMode::Netfilter(_) => (
            "netfilter",
            Endpoints::ListenPort(netfilter_port.unwrap_or(0)),
        ),
    };
    InstanceLabels {
        mode: mode.into(),
        transport: transport(config.ohttp.is_some()),
        endpoints,
    }
}

pub fn egress(config: &Egress, netfilter_port: Option<u16>) -> InstanceLabels {
    let (mode, endpoints) = match &config.mode {
        EgressMode::Mapping(rules) => ("mapping", in_out(rules)),
        EgressMode::Netfilter(_) => (
            "netfilter",
            Endpoints::ListenPort(netfilter_port.unwrap_or(0)),
        ),
    };
    InstanceLabels {
        mode: mode.into(),
        transport: transport(config.ohttp.is_some()),
        endpoints,
    }
}

fn transport(ohttp: bool) -> Transport {
    if ohttp {
        Transport::Ohttp
    } else {
        Transport::RatsTls
    }
}

/// The first rule only, as upstream labels it.
fn in_out(rules: &[MappingRule]) -> Endpoints {
    match rules.first().and_then(|rule| rule.pairs().next()) {
        Some((listen, upstream)) => Endpoints::InOut {
            listen: listen.to_string(),
            upstream: upstream.to_string(),
        },
        None => Endpoints::InOut {
            listen: String::new(),
            upstream: String::new(),
        },
    }
}

fn proxy_listen(endpoint: &Endpoint) -> Endpoints {
    Endpoints::ProxyListen(format!("{}:{}", endpoint.host, endpoint.port))
}
