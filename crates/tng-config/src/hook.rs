//! The `hook` modes, served only under `tng exec`: the ingress hook is a CONNECT proxy the
//! preloaded library hands the application's connections to; the egress hook listens on the
//! ports the application asked for while the library moves the application to other ports.

use std::net::Ipv4Addr;

use crate::error::Result;
use crate::filter::{parse_cidr, parse_ipv4};
use crate::json::Field;

/// `add_ingress[].hook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressHook {
    pub capture_dst: Vec<HookCaptureDst>,
    /// `None`: `tng exec` picks a free port.
    pub proxy_port: Option<u16>,
    /// Bind address of the internal proxy (the library always dials 127.0.0.1).
    pub proxy_listen: String,
    pub capture_local_traffic: bool,
}

/// One capture rule of an ingress hook: a destination network (any when `None`) and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCaptureDst {
    pub host: Option<(Ipv4Addr, u8)>,
    pub port: u16,
    pub port_end: Option<u16>,
}

/// `add_egress[].hook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressHook {
    pub capture_listen: Vec<HookListen>,
    pub capture_local_traffic: bool,
    /// (origin port, real port) pairs: the application asks for the origin port, the library
    /// binds it to the real port, TNG listens on the origin port. Filled in by `tng exec`
    /// (ports it allocates); empty after parsing.
    pub ports: Vec<(u16, u16)>,
}

/// One `capture_listen` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookListen {
    /// `None` = 0.0.0.0 (any local address).
    pub host: Option<Ipv4Addr>,
    pub ifname: Option<String>,
    pub port: u16,
    pub port_end: Option<u16>,
    pub redirect_to_port: Option<u16>,
    pub redirect_to_port_end: Option<u16>,
}

impl HookListen {
    /// The origin ports of the entry, each with its fixed real port (`None`: to allocate).
    pub fn expand(&self) -> std::result::Result<Vec<(u16, Option<u16>)>, String> {
        let end = self.port_end.unwrap_or(self.port);
        if end < self.port {
            return Err(format!("port_end ({end}) < port ({})", self.port));
        }
        let origins = self.port..=end;
        match (self.redirect_to_port, self.redirect_to_port_end) {
            (None, None) => Ok(origins.map(|p| (p, None)).collect()),
            (None, Some(_)) => Err("redirect_to_port_end requires redirect_to_port".into()),
            (Some(real), None) => {
                if self.port_end.is_some() {
                    return Err(
                        "a port range needs redirect_to_port_end with redirect_to_port".into(),
                    );
                }
                Ok(vec![(self.port, Some(real))])
            }
            (Some(real), Some(real_end)) => {
                if real_end < real {
                    return Err(format!(
                        "redirect_to_port_end ({real_end}) < redirect_to_port ({real})"
                    ));
                }
                if real_end - real != end - self.port {
                    return Err(format!(
                        "the ranges {}-{end} and {real}-{real_end} differ in length",
                        self.port
                    ));
                }
                Ok(origins
                    .zip(real..=real_end)
                    .map(|(o, r)| (o, Some(r)))
                    .collect())
            }
        }
    }
}

pub(crate) fn parse_ingress_hook(field: &Field<'_>) -> Result<IngressHook> {
    let mut obj = field.object()?;
    let capture_dst = match obj.field("capture_dst") {
        Some(f) => f
            .one_or_many()?
            .iter()
            .map(parse_capture_dst)
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let proxy_port = obj.opt("proxy_port").map(|f| f.u16()).transpose()?;
    let proxy_listen = match obj.opt("proxy_listen") {
        Some(f) => {
            let host = f.string()?;
            if host.is_empty() {
                return Err(f.err("must not be empty"));
            }
            host
        }
        None => "127.0.0.1".to_owned(),
    };
    let capture_local_traffic = obj
        .field("capture_local_traffic")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    obj.finish(&[
        "capture_dst",
        "proxy_port",
        "proxy_listen",
        "capture_local_traffic",
    ])?;
    Ok(IngressHook {
        capture_dst,
        proxy_port,
        proxy_listen,
        capture_local_traffic,
    })
}

fn parse_capture_dst(field: &Field<'_>) -> Result<HookCaptureDst> {
    let mut obj = field.object()?;
    let host = match obj.opt("host") {
        Some(f) => Some(parse_cidr(f.str()?).map_err(|m| f.err(m))?),
        None => None,
    };
    let port = obj.req("port")?.u16()?;
    let port_end = match obj.opt("port_end") {
        Some(f) => {
            let end = f.u16()?;
            // Upstream accepts this and the rule then matches nothing.
            if end < port {
                return Err(f.err(format!("must be >= port ({port})")));
            }
            Some(end)
        }
        None => None,
    };
    obj.finish(&["host", "port", "port_end"])?;
    Ok(HookCaptureDst {
        host,
        port,
        port_end,
    })
}

pub(crate) fn parse_egress_hook(field: &Field<'_>) -> Result<EgressHook> {
    let mut obj = field.object()?;
    let capture_listen = match obj.field("capture_listen") {
        Some(f) => f
            .one_or_many()?
            .iter()
            .map(parse_listen)
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let capture_local_traffic = obj
        .field("capture_local_traffic")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    obj.finish(&["capture_listen", "capture_local_traffic"])?;
    Ok(EgressHook {
        capture_listen,
        capture_local_traffic,
        ports: Vec::new(),
    })
}

fn parse_listen(field: &Field<'_>) -> Result<HookListen> {
    let mut obj = field.object()?;
    let host = obj.opt("host").map(|f| parse_ipv4(&f)).transpose()?;
    let ifname = match obj.opt("ifname") {
        Some(f) => {
            let name = f.string()?;
            if name.is_empty() {
                return Err(f.err("must not be empty"));
            }
            Some(name)
        }
        None => None,
    };
    let port = obj.req("port")?.u16()?;
    let port_end = obj.opt("port_end").map(|f| f.u16()).transpose()?;
    let redirect_to_port = obj.opt("redirect_to_port").map(|f| f.u16()).transpose()?;
    let redirect_to_port_end = obj
        .opt("redirect_to_port_end")
        .map(|f| f.u16())
        .transpose()?;
    obj.finish(&[
        "host",
        "ifname",
        "port",
        "port_end",
        "redirect_to_port",
        "redirect_to_port_end",
    ])?;
    let listen = HookListen {
        host,
        ifname,
        port,
        port_end,
        redirect_to_port,
        redirect_to_port_end,
    };
    if let Err(message) = listen.expand() {
        return Err(field.err(format!("Failed to expand intercept entry: {message}")));
    }
    Ok(listen)
}
