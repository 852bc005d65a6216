//! The metric labels of each entry (observability spec §2.2), fixed when the entry is built.

use tng_config::{Egress, EgressMode, Endpoint, Ingress, IngressMode, MappingRule, MappingUdp};
use tng_telemetry::{Endpoints, InstanceLabels, Transport};

pub fn ingress(config: &Ingress, netfilter_port: Option<u16>) -> InstanceLabels {
    let (mode, endpoints) = match &config.mode {
        IngressMode::Mapping(rules) => ("mapping", in_out(rules)),
        IngressMode::HttpProxy(proxy) => ("http_proxy", proxy_listen(&proxy.proxy_listen)),
        IngressMode::Socks5(socks) => ("socks5", proxy_listen(&socks.proxy_listen)),
        IngressMode::Hook(hook) => (
            "hook",
            Endpoints::ProxyListen(format!(
                "{}:{}",
                hook.proxy_listen,
                hook.proxy_port.unwrap_or(0)
            )),
        ),
        IngressMode::Netfilter(_) => (
            "netfilter",
            Endpoints::ListenPort(netfilter_port.unwrap_or(0)),
        ),
        IngressMode::MappingUdp(m) => ("mapping_udp", udp_in_out(m)),
        IngressMode::NetfilterUdp(_) => (
            "netfilter_udp",
            Endpoints::ListenPort(netfilter_port.unwrap_or(0)),
        ),
    };
    InstanceLabels {
        mode: mode.into(),
        transport: transport(config.ohttp.is_some(), config.mode.is_udp()),
        endpoints,
    }
}

pub fn egress(config: &Egress, netfilter_port: Option<u16>) -> InstanceLabels {
    let (mode, endpoints) = match &config.mode {
        EgressMode::Mapping(rules) => ("mapping", in_out(rules)),
        EgressMode::Hook(hook) => (
            "hook",
            Endpoints::ListenPort(hook.ports.first().map(|p| p.0).unwrap_or(0)),
        ),
        EgressMode::Netfilter(_) => (
            "netfilter",
            Endpoints::ListenPort(netfilter_port.unwrap_or(0)),
        ),
        EgressMode::MappingUdp(m) => ("mapping_udp", udp_in_out(m)),
        EgressMode::NetfilterUdp(_) => (
            "netfilter_udp",
            Endpoints::ListenPort(netfilter_port.unwrap_or(0)),
        ),
    };
    InstanceLabels {
        mode: mode.into(),
        transport: transport(config.ohttp.is_some(), config.mode.is_udp()),
        endpoints,
    }
}

fn transport(ohttp: bool, udp: bool) -> Transport {
    if udp {
        Transport::Quic
    } else if ohttp {
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

fn udp_in_out(m: &MappingUdp) -> Endpoints {
    Endpoints::InOut {
        listen: m.in_addr.to_string(),
        upstream: format!("{}:{}", m.out_host, m.out_port),
    }
}
