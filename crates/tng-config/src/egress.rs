use regex::Regex;

use crate::client_addr::{parse_proxy_protocol, ProxyProtocol, TrustIngressClientIp};
use crate::error::{ConfigError, Result};
use crate::hook::{parse_egress_hook, EgressHook};
use crate::json::{compile_regex, Field};
use crate::limits::{parse_limits, Limits};
use crate::mapping::{parse_mapping, MappingRule};
use crate::mode::{parse_quic_common, single_mode};
use crate::netfilter::{parse_egress_netfilter, EgressNetfilter};
use crate::ohttp::{parse_egress_ohttp, EgressOhttp};
use crate::ra::{parse_ra, Ra};
use crate::rats_tls::{parse_rats_tls, RatsTls};
use crate::udp::{parse_mapping_udp, parse_netfilter_udp, MappingUdp, NetfilterUdp, Quic};

#[derive(Debug, Clone)]
pub struct Egress {
    /// Index in `add_egress`.
    pub id: usize,
    pub mode: EgressMode,
    /// `None` means the rats-TLS transport.
    pub ohttp: Option<EgressOhttp>,
    /// Request paths (matched unanchored, without the query) forwarded without the tunnel.
    pub direct_forward: Vec<Regex>,
    /// The rats-TLS framing; meaningful only without `ohttp`.
    pub rats_tls: RatsTls,
    pub ra: Ra,
    pub limits: Limits,
    /// Our extension: what the `server` header of the egress's own answers says.
    pub server_header: ServerHeader,
    /// Our extension: connections start with a PROXY protocol v2 header.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Read by the UDP modes only.
    pub quic: Quic,
}

/// `add_egress[].server_header` (not an upstream key). The version helps an attacker pick
/// known bugs, so it is only sent when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerHeader {
    /// `server: tng`
    #[default]
    Name,
    /// `server: tng/<version>`
    NameVersion,
    /// no `server` header
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressMode {
    Mapping(Vec<MappingRule>),
    Netfilter(EgressNetfilter),
    MappingUdp(MappingUdp),
    NetfilterUdp(NetfilterUdp),
    /// Only under `tng exec`.
    Hook(EgressHook),
}

impl EgressMode {
    /// The UDP modes carry datagrams over QUIC instead of connections over TLS or OHTTP.
    pub fn is_udp(&self) -> bool {
        matches!(self, Self::MappingUdp(_) | Self::NetfilterUdp(_))
    }
}

const MODES: [&str; 5] = [
    "mapping",
    "netfilter",
    "mapping_udp",
    "netfilter_udp",
    "hook",
];
const KEYS: [&str; 16] = [
    "mapping",
    "netfilter",
    "hook",
    "mapping_udp",
    "netfilter_udp",
    "ohttp",
    "decap_from_http",
    "direct_forward",
    "rats_tls",
    "quic",
    "no_ra",
    "attest",
    "verify",
    "limits",
    "server_header",
    "proxy_protocol",
];

pub(crate) fn parse_egress(
    id: usize,
    field: &Field<'_>,
    warnings: &mut Vec<String>,
) -> Result<Egress> {
    let mut obj = field.object()?;
    let (mode_name, mode_field) = single_mode(&mut obj, &MODES)?;
    let mode = match mode_name {
        "mapping" => EgressMode::Mapping(parse_mapping(&mode_field)?),
        "hook" => EgressMode::Hook(parse_egress_hook(&mode_field)?),
        "mapping_udp" => EgressMode::MappingUdp(parse_mapping_udp(&mode_field, "egress")?),
        "netfilter_udp" => EgressMode::NetfilterUdp(parse_netfilter_udp(&mode_field, true)?),
        _ => EgressMode::Netfilter(parse_egress_netfilter(&mode_field)?),
    };
    let quic = parse_quic_common(&mut obj)?;
    let (ohttp, legacy) = match obj.aliased("ohttp", "decap_from_http")? {
        Some(f) if !f.is_null() => {
            let (ohttp, legacy) = parse_egress_ohttp(&f, warnings)?;
            (Some(ohttp), legacy)
        }
        _ => (None, None),
    };
    let direct_forward = match (obj.opt("direct_forward"), legacy) {
        (Some(f), Some(legacy)) => {
            return Err(ConfigError::new(
                f.path,
                format!(
                    "cannot be combined with the deprecated {} (keep only direct_forward)",
                    legacy.path
                ),
            ));
        }
        (Some(f), None) => f
            .array()?
            .iter()
            .map(parse_direct_forward_rule)
            .collect::<Result<_>>()?,
        (None, Some(legacy)) => {
            warnings.push(format!(
                "{}: deprecated; write direct_forward [{{\"http_path\": ...}}] instead",
                legacy.path
            ));
            legacy.regexes
        }
        (None, None) => Vec::new(),
    };
    let rats_tls = match obj.opt("rats_tls") {
        Some(f) if ohttp.is_some() => {
            return Err(f.err("cannot be combined with ohttp (an entry uses one transport)"))
        }
        Some(f) => parse_rats_tls(&f, false)?,
        None => RatsTls::default(),
    };
    let ra = parse_ra(&mut obj, warnings)?;
    let limits = parse_limits(&mut obj, true)?;
    let server_header = match obj.opt("server_header") {
        None => ServerHeader::default(),
        Some(f) => match f.str()? {
            "name" => ServerHeader::Name,
            "name_version" => ServerHeader::NameVersion,
            "off" => ServerHeader::Off,
            _ => return Err(f.err("must be \"name\", \"name_version\" or \"off\"")),
        },
    };
    let proxy_protocol = match obj.opt("proxy_protocol") {
        Some(f) => parse_proxy_protocol(&f)?,
        None => None,
    };
    if let Some(ohttp) = &ohttp {
        if ohttp.trust_ingress_client_ip == Some(TrustIngressClientIp::Attested)
            && ra.verify.is_none()
        {
            warnings.push(format!(
                "add_egress[{id}].ohttp.trust_ingress_client_ip: \"attested\" never applies \
                 without `verify` (no ingress is attested); the client address stays the TCP peer's"
            ));
        }
    }
    obj.finish(&KEYS)?;
    if mode.is_udp() && ohttp.is_some() {
        warnings.push(format!(
            "add_egress[{id}].ohttp: ignored by UDP modes (datagrams always travel over attested QUIC)"
        ));
    }
    Ok(Egress {
        id,
        ohttp: if mode.is_udp() { None } else { ohttp },
        mode,
        direct_forward,
        rats_tls,
        ra,
        limits,
        server_header,
        proxy_protocol,
        quic,
    })
}

fn parse_direct_forward_rule(field: &Field<'_>) -> Result<Regex> {
    let mut obj = field.object()?;
    let regex = compile_regex(&obj.req("http_path")?)?;
    obj.finish(&["http_path"])?;
    Ok(regex)
}
