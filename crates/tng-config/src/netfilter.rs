use std::net::Ipv4Addr;

use crate::error::Result;
use crate::filter::{parse_cidr, parse_port_range};
use crate::json::{Field, Obj};

/// Upstream's default socket mark for TNG's own connections (0x235).
pub const DEFAULT_SO_MARK: u32 = 565;

/// One capture selector; at least one of `host`, `ipset`, `ports` is set, never both `host` and
/// `ipset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureDst {
    pub host: Option<(Ipv4Addr, u8)>,
    pub ipset: Option<String>,
    pub ports: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressNetfilter {
    pub capture_dst: Vec<CaptureDst>,
    pub capture_cgroup: Vec<String>,
    pub nocapture_cgroup: Vec<String>,
    /// `None`: pick a free port.
    pub listen_port: Option<u16>,
    pub so_mark: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressNetfilter {
    pub capture_dst: Vec<CaptureDst>,
    pub capture_local_traffic: bool,
    pub capture_cgroup: Vec<String>,
    pub nocapture_cgroup: Vec<String>,
    pub listen_port: Option<u16>,
    pub so_mark: u32,
}

pub(crate) struct Common {
    pub(crate) capture_dst: Vec<CaptureDst>,
    pub(crate) capture_cgroup: Vec<String>,
    pub(crate) nocapture_cgroup: Vec<String>,
    pub(crate) listen_port: Option<u16>,
    pub(crate) so_mark: u32,
}

const INGRESS_KEYS: [&str; 5] = [
    "capture_dst",
    "capture_cgroup",
    "nocapture_cgroup",
    "listen_port",
    "so_mark",
];
const EGRESS_KEYS: [&str; 6] = [
    "capture_dst",
    "capture_local_traffic",
    "capture_cgroup",
    "nocapture_cgroup",
    "listen_port",
    "so_mark",
];

pub(crate) fn parse_ingress_netfilter(field: &Field<'_>) -> Result<IngressNetfilter> {
    let mut obj = field.object()?;
    if let Some(f) = obj.field("capture_local_traffic") {
        return Err(
            f.err("has no effect on an ingress (only egress netfilter captures local traffic)")
        );
    }
    let c = parse_common(&mut obj)?;
    obj.finish(&INGRESS_KEYS)?;
    check_selects_something(field, &c)?;
    Ok(IngressNetfilter {
        capture_dst: c.capture_dst,
        capture_cgroup: c.capture_cgroup,
        nocapture_cgroup: c.nocapture_cgroup,
        listen_port: c.listen_port,
        so_mark: c.so_mark,
    })
}

pub(crate) fn parse_egress_netfilter(field: &Field<'_>) -> Result<EgressNetfilter> {
    let mut obj = field.object()?;
    let capture_local_traffic = obj
        .field("capture_local_traffic")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    let c = parse_common(&mut obj)?;
    obj.finish(&EGRESS_KEYS)?;
    check_selects_something(field, &c)?;
    Ok(EgressNetfilter {
        capture_dst: c.capture_dst,
        capture_local_traffic,
        capture_cgroup: c.capture_cgroup,
        nocapture_cgroup: c.nocapture_cgroup,
        listen_port: c.listen_port,
        so_mark: c.so_mark,
    })
}

fn check_selects_something(field: &Field<'_>, c: &Common) -> Result<()> {
    if c.capture_dst.is_empty() && c.capture_cgroup.is_empty() {
        return Err(
            field.err("at least one of capture_dst, capture_cgroup must be set and not empty")
        );
    }
    Ok(())
}

pub(crate) fn parse_common(obj: &mut Obj<'_>) -> Result<Common> {
    let capture_dst = match obj.field("capture_dst") {
        Some(f) => f
            .one_or_many()?
            .iter()
            .map(parse_capture_dst)
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let capture_cgroup = parse_cgroups(obj.field("capture_cgroup"))?;
    let nocapture_cgroup = parse_cgroups(obj.field("nocapture_cgroup"))?;
    let listen_port = obj.opt("listen_port").map(|f| f.u16()).transpose()?;
    let so_mark = match obj.field("so_mark") {
        Some(f) => {
            let mark = f.u32()?;
            // Mark 0 is "unmarked": TNG's own connections would be captured again, in a loop.
            if mark == 0 {
                return Err(f.err(
                    "must not be 0 (the mark is what keeps TNG's own connections out of capture)",
                ));
            }
            mark
        }
        None => DEFAULT_SO_MARK,
    };
    Ok(Common {
        capture_dst,
        capture_cgroup,
        nocapture_cgroup,
        listen_port,
        so_mark,
    })
}

/// The names end up inside iptables rules, so anything that would split or break a rule line is
/// refused here rather than by iptables later.
fn check_rule_word(field: &Field<'_>, text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(field.err("must not be empty"));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        return Err(field.err("must not contain whitespace, quotes or control characters"));
    }
    Ok(())
}

fn parse_cgroups(field: Option<Field<'_>>) -> Result<Vec<String>> {
    let Some(field) = field else {
        return Ok(Vec::new());
    };
    let items = field.array()?;
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let path = item.string()?;
        check_rule_word(item, &path)?;
        out.push(path);
    }
    Ok(out)
}

fn parse_capture_dst(field: &Field<'_>) -> Result<CaptureDst> {
    let mut obj = field.object()?;
    let host = match obj.opt("host") {
        Some(f) => Some(parse_cidr(f.str()?).map_err(|m| f.err(m))?),
        None => None,
    };
    let ipset = match obj.opt("ipset") {
        Some(f) => {
            let name = f.string()?;
            check_rule_word(&f, &name)?;
            // ipset(8) limits set names to 31 characters.
            if name.len() > 31 {
                return Err(f.err("an ipset name has at most 31 characters"));
            }
            Some(name)
        }
        None => None,
    };
    let ports = parse_port_range(&mut obj)?;
    obj.finish(&["host", "ipset", "port", "port_end"])?;
    if host.is_some() && ipset.is_some() {
        return Err(field.err("only one of host or ipset can be specified"));
    }
    if host.is_none() && ipset.is_none() && ports.is_none() {
        return Err(field.err("one of host, ipset, port must be specified"));
    }
    Ok(CaptureDst { host, ipset, ports })
}
