use crate::control::{parse_endpoint, Endpoint};
use crate::error::Result;
use crate::filter::{parse_filter, EndpointFilter};
use crate::hook::{parse_ingress_hook, IngressHook};
use crate::json::Field;
use crate::limits::{parse_limits, Limits};
use crate::mapping::{parse_mapping, MappingRule};
use crate::mode::{parse_quic_common, single_mode};
use crate::netfilter::{parse_ingress_netfilter, IngressNetfilter};
use crate::ohttp::{parse_ingress_ohttp, IngressOhttp};
use crate::ra::{parse_ra, Ra};
use crate::rats_tls::{parse_rats_tls, RatsTls};
use crate::udp::{parse_mapping_udp, parse_netfilter_udp, MappingUdp, NetfilterUdp, Quic};

#[derive(Debug, Clone)]
pub struct Ingress {
    /// Index in `add_ingress`.
    pub id: usize,
    pub mode: IngressMode,
    /// `None` means the rats-TLS transport.
    pub ohttp: Option<IngressOhttp>,
    /// The rats-TLS framing; meaningful only without `ohttp`.
    pub rats_tls: RatsTls,
    pub ra: Ra,
    pub limits: Limits,
    /// Read by the UDP modes only.
    pub quic: Quic,
}

#[derive(Debug, Clone)]
pub enum IngressMode {
    Mapping(Vec<MappingRule>),
    HttpProxy(HttpProxy),
    Netfilter(IngressNetfilter),
    Socks5(Socks5),
    MappingUdp(MappingUdp),
    NetfilterUdp(NetfilterUdp),
    /// Only under `tng exec`.
    Hook(IngressHook),
}

impl IngressMode {
    /// The UDP modes carry datagrams over QUIC instead of connections over TLS or OHTTP.
    pub fn is_udp(&self) -> bool {
        matches!(self, Self::MappingUdp(_) | Self::NetfilterUdp(_))
    }
}

#[derive(Debug, Clone)]
pub struct HttpProxy {
    pub proxy_listen: Endpoint,
    /// Empty: everything goes through the tunnel.
    pub dst_filters: Vec<EndpointFilter>,
}

#[derive(Debug, Clone)]
pub struct Socks5 {
    pub proxy_listen: Endpoint,
    pub dst_filters: Vec<EndpointFilter>,
    pub auth: Option<Socks5Auth>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks5Auth {
    pub username: String,
    pub password: String,
}

const MODES: [&str; 7] = [
    "mapping",
    "http_proxy",
    "netfilter",
    "socks5",
    "mapping_udp",
    "netfilter_udp",
    "hook",
];
const KEYS: [&str; 16] = [
    "mapping",
    "http_proxy",
    "netfilter",
    "socks5",
    "hook",
    "mapping_udp",
    "netfilter_udp",
    "ohttp",
    "encap_in_http",
    "rats_tls",
    "quic",
    "web_page_inject",
    "no_ra",
    "attest",
    "verify",
    "limits",
];

pub(crate) fn parse_ingress(
    id: usize,
    field: &Field<'_>,
    warnings: &mut Vec<String>,
) -> Result<Ingress> {
    let mut obj = field.object()?;
    let (mode_name, mode_field) = single_mode(&mut obj, &MODES)?;
    let mode = match mode_name {
        "mapping" => IngressMode::Mapping(parse_mapping(&mode_field)?),
        "http_proxy" => IngressMode::HttpProxy(parse_http_proxy(&mode_field)?),
        "netfilter" => IngressMode::Netfilter(parse_ingress_netfilter(&mode_field)?),
        "hook" => IngressMode::Hook(parse_ingress_hook(&mode_field)?),
        "mapping_udp" => IngressMode::MappingUdp(parse_mapping_udp(&mode_field, "ingress")?),
        "netfilter_udp" => IngressMode::NetfilterUdp(parse_netfilter_udp(&mode_field, false)?),
        _ => IngressMode::Socks5(parse_socks5(&mode_field, warnings)?),
    };
    let quic = parse_quic_common(&mut obj)?;
    if let Some(f) = obj.field("web_page_inject") {
        if f.bool()? {
            return Err(f.err("web_page_inject is not supported by this implementation"));
        }
    }
    let ohttp = match obj.aliased("ohttp", "encap_in_http")? {
        Some(f) if !f.is_null() => Some(parse_ingress_ohttp(&f, warnings)?),
        _ => None,
    };
    let rats_tls = match obj.opt("rats_tls") {
        Some(f) if ohttp.is_some() => {
            return Err(f.err("cannot be combined with ohttp (an entry uses one transport)"))
        }
        Some(f) => parse_rats_tls(&f, true)?,
        None => RatsTls::default(),
    };
    let ra = parse_ra(&mut obj, warnings)?;
    let limits = parse_limits(&mut obj, false)?;
    obj.finish(&KEYS)?;
    if mode.is_udp() && ohttp.is_some() {
        warnings.push(format!(
            "add_ingress[{id}].ohttp: ignored by UDP modes (datagrams always travel over attested QUIC)"
        ));
    }
    Ok(Ingress {
        id,
        ohttp: if mode.is_udp() { None } else { ohttp },
        mode,
        rats_tls,
        ra,
        limits,
        quic,
    })
}

fn parse_http_proxy(field: &Field<'_>) -> Result<HttpProxy> {
    let mut obj = field.object()?;
    let proxy_listen = parse_endpoint(&obj.req("proxy_listen")?)?;
    let dst_filters = match obj.aliased("dst_filters", "dst_filter")? {
        Some(f) => f
            .one_or_many()?
            .iter()
            .map(parse_filter)
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    obj.finish(&["proxy_listen", "dst_filters", "dst_filter"])?;
    Ok(HttpProxy {
        proxy_listen,
        dst_filters,
    })
}

fn parse_socks5(field: &Field<'_>, warnings: &mut Vec<String>) -> Result<Socks5> {
    let mut obj = field.object()?;
    let proxy_listen = parse_endpoint(&obj.req("proxy_listen")?)?;
    let dst_filters = match obj.aliased("dst_filters", "dst_filter")? {
        Some(f) if f.path.ends_with(".dst_filter") => {
            // Upstream ignores this key on socks5 and so tunnels everything; honouring the
            // filter is what its author meant.
            warnings.push(format!(
                "{}: accepted as an alias of dst_filters (upstream TNG ignores it on socks5 and tunnels everything)",
                f.path
            ));
            f.one_or_many()?
                .iter()
                .map(parse_filter)
                .collect::<Result<_>>()?
        }
        Some(f) => f.array()?.iter().map(parse_filter).collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let auth = match obj.opt("auth") {
        Some(f) => {
            let mut auth = f.object()?;
            let username = auth.req("username")?.string()?;
            let password = auth.req("password")?.string()?;
            auth.finish(&["username", "password"])?;
            Some(Socks5Auth { username, password })
        }
        None => None,
    };
    obj.finish(&["proxy_listen", "dst_filters", "dst_filter", "auth"])?;
    Ok(Socks5 {
        proxy_listen,
        dst_filters,
        auth,
    })
}
