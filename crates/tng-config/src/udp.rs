//! The UDP modes (`mapping_udp`, `netfilter_udp`) and the `quic` tuning object.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::error::{ConfigError, Result};
use crate::json::{Field, Obj};
use crate::netfilter::{parse_common, CaptureDst};

/// Upstream's default for `idle_timeout_secs`.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// QUIC's own idle timeout, as upstream advertises it.
pub const DEFAULT_QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// `quic` of an entry: read by the UDP modes only (TCP modes accept and ignore it, as upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quic {
    /// Datagrams longer than this are not sent into the tunnel; `None`: the path's limit only.
    pub max_datagram_size: Option<u16>,
    /// Our extension `quic.max_idle_timeout_ms`: the QUIC connection's idle timeout (both
    /// peers' minimum applies). Keep-alives go out at a third of it.
    pub max_idle_timeout: Duration,
}

impl Default for Quic {
    fn default() -> Self {
        Self {
            max_datagram_size: None,
            max_idle_timeout: DEFAULT_QUIC_IDLE_TIMEOUT,
        }
    }
}

pub(crate) fn parse_quic(field: &Field<'_>) -> Result<Quic> {
    let mut obj = field.object()?;
    let max_datagram_size = match obj.opt("max_datagram_size") {
        Some(f) => {
            let size = f.u64()?;
            if size == 0 {
                return Err(f.err("must be > 0"));
            }
            // Nothing larger fits in one UDP datagram, so nothing larger can arrive.
            Some(u16::try_from(size.min(65535)).unwrap_or(u16::MAX))
        }
        None => None,
    };
    let max_idle_timeout = match obj.opt("max_idle_timeout_ms") {
        Some(f) => {
            let ms = f.u64()?;
            if !(100..=600_000).contains(&ms) {
                return Err(f.err("must be between 100 and 600000"));
            }
            Duration::from_millis(ms)
        }
        None => DEFAULT_QUIC_IDLE_TIMEOUT,
    };
    obj.finish(&["max_datagram_size", "max_idle_timeout_ms"])?;
    Ok(Quic {
        max_datagram_size,
        max_idle_timeout,
    })
}

/// `mapping_udp`: datagrams arriving at `in` go to `out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingUdp {
    pub in_addr: SocketAddrV4,
    /// Kept verbatim: the ingress needs an IP literal (checked per flow, as upstream only
    /// fails at the first datagram), the egress also resolves a DNS name per connection.
    pub out_host: String,
    pub out_port: u16,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetfilterUdp {
    /// Empty: every UDP datagram is captured.
    pub capture_dst: Vec<CaptureDst>,
    pub capture_cgroup: Vec<String>,
    pub nocapture_cgroup: Vec<String>,
    pub listen_port: Option<u16>,
    pub so_mark: u32,
    /// Egress only: capture locally generated datagrams too.
    pub capture_local_traffic: bool,
    pub idle_timeout: Duration,
}

pub(crate) fn parse_mapping_udp(field: &Field<'_>, side: &str) -> Result<MappingUdp> {
    let mut obj = field.object()?;
    let in_field = obj.req("in")?;
    let out_field = obj.req("out")?;
    let idle_timeout = parse_idle(&mut obj)?;
    obj.finish(&["in", "out", "idle_timeout_secs"])?;

    let mut in_obj = in_field.object()?;
    let in_host = match in_obj.opt("host") {
        Some(f) => f
            .str()?
            .parse::<Ipv4Addr>()
            .map_err(|_| f.err("must be an IPv4 address"))?,
        None => Ipv4Addr::UNSPECIFIED,
    };
    let in_port = in_obj.req("port")?.u16()?;
    in_obj.finish(&["host", "port"])?;

    let mut out_obj = out_field.object()?;
    let out_host = match out_obj.opt("host") {
        Some(f) => {
            let host = f.string()?;
            if host.is_empty() {
                return Err(f.err("must not be empty"));
            }
            host
        }
        None => {
            return Err(out_field.err(format!(
                "'host' of 'out' field must be set for mapping_udp {side}"
            )))
        }
    };
    let out_port = out_obj.req("port")?.u16()?;
    out_obj.finish(&["host", "port"])?;
    Ok(MappingUdp {
        in_addr: SocketAddrV4::new(in_host, in_port),
        out_host,
        out_port,
        idle_timeout,
    })
}

/// `capture_local_traffic` first: the ingress list is the rest.
const EGRESS_KEYS: [&str; 7] = [
    "capture_local_traffic",
    "capture_dst",
    "capture_cgroup",
    "nocapture_cgroup",
    "listen_port",
    "so_mark",
    "idle_timeout_secs",
];

pub(crate) fn parse_netfilter_udp(field: &Field<'_>, egress: bool) -> Result<NetfilterUdp> {
    let mut obj = field.object()?;
    let capture_local_traffic = match obj.field("capture_local_traffic") {
        Some(f) if !egress => {
            return Err(
                f.err("has no effect on an ingress (only egress netfilter captures local traffic)")
            )
        }
        Some(f) => f.bool()?,
        None => false,
    };
    let idle_timeout = parse_idle(&mut obj)?;
    let c = parse_common(&mut obj)?;
    obj.finish(if egress {
        &EGRESS_KEYS
    } else {
        &EGRESS_KEYS[1..]
    })?;
    if let Some(listen) = c.listen_port {
        if let Some(dst) = c
            .capture_dst
            .iter()
            .find(|d| d.ports.is_some_and(|(a, b)| (a..=b).contains(&listen)))
        {
            let (a, b) = dst.ports.unwrap_or_default();
            return Err(ConfigError::new(
                format!("{}.listen_port", field.path),
                format!(
                "must not overlap a capture_dst port range ({a}-{b}); the TPROXY listener would intercept its own traffic"
            ),
            ));
        }
    }
    Ok(NetfilterUdp {
        capture_dst: c.capture_dst,
        capture_cgroup: c.capture_cgroup,
        nocapture_cgroup: c.nocapture_cgroup,
        listen_port: c.listen_port,
        so_mark: c.so_mark,
        capture_local_traffic,
        idle_timeout,
    })
}

fn parse_idle(obj: &mut Obj<'_>) -> Result<Duration> {
    match obj.opt("idle_timeout_secs") {
        Some(f) => {
            let secs = f.u64()?;
            if secs == 0 {
                return Err(f.err("must be > 0"));
            }
            Ok(Duration::from_secs(secs))
        }
        None => Ok(DEFAULT_UDP_IDLE_TIMEOUT),
    }
}
