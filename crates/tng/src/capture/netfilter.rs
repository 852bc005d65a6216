//! The `netfilter` modes: a listener fed by iptables rules in the namespace. The ingress
//! TPROXYs locally generated traffic to its transparent listener (the original destination is
//! the accepted socket's local address); the egress REDIRECTs inbound traffic to its listener
//! (conntrack keeps the original destination). The rules live exactly as long as the
//! [`Capture`] guard returned with the listener.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use anyhow::Context;
use tng_capture::iptables;
use tng_capture::rules::{
    Destination as RuleDestination, EgressRules, IngressRules, RuleSet, Selection,
};
use tng_config::{CaptureDst, EgressNetfilter, IngressNetfilter};
use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

use crate::net::bind_unlistened;

/// Installed netfilter rules; removed when dropped (graceful stop) or by the next start.
pub struct Capture {
    set: RuleSet,
    route_table: Option<u32>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Err(err) = iptables::remove(self.set.table, &self.set.chains) {
            warn!("removing netfilter rules failed: {err}");
        }
        if let Some(table) = self.route_table {
            iptables::remove_local_route(table);
        }
        info!(chains = ?self.set.chains, "netfilter rules removed");
    }
}

/// What both sides check before touching the system: the tools exist, and so do the cgroup v2
/// hierarchy and the ipsets the rules will name.
pub(super) fn prepare(
    field: &str,
    need_ip: bool,
    dsts: &[CaptureDst],
    cgroups: &[String],
    excluded: &[String],
) -> anyhow::Result<Selection> {
    iptables::check_tools(need_ip).with_context(|| field.to_string())?;
    selection(dsts, cgroups, excluded, field)
}

fn selection(
    dsts: &[CaptureDst],
    cgroups: &[String],
    excluded: &[String],
    field: &str,
) -> anyhow::Result<Selection> {
    let uses_cgroups = !cgroups.is_empty() || !excluded.is_empty();
    if uses_cgroups && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        anyhow::bail!("{field}.capture_cgroup/nocapture_cgroup need cgroup v2 (/sys/fs/cgroup/cgroup.controllers is missing)");
    }
    for (i, dst) in dsts.iter().enumerate() {
        if let Some(set) = &dst.ipset {
            let exists = std::process::Command::new("ipset")
                .args(["list", "-n", set])
                .output()
                .map(|o| o.status.success());
            match exists {
                Ok(true) => {}
                Ok(false) => anyhow::bail!("{field}.capture_dst[{i}].ipset: ipset `{set}` does not exist"),
                Err(_) => anyhow::bail!("{field}.capture_dst[{i}].ipset: `ipset` was not found on PATH: install the Debian package `ipset`"),
            }
        }
    }
    Ok(Selection {
        destinations: dsts
            .iter()
            .map(|d| RuleDestination {
                host: d.host,
                ipset: d.ipset.clone(),
                ports: d.ports,
            })
            .collect(),
        cgroups: cgroups.to_vec(),
        excluded_cgroups: excluded.to_vec(),
    })
}

/// Installs `set` and the fwmark policy route that delivers its TPROXYed packets locally.
pub(super) fn install_tproxy(
    field: &str,
    set: RuleSet,
    fw_mark: u32,
    route_table: u32,
) -> anyhow::Result<Capture> {
    iptables::install(&set).with_context(|| format!("{field}: installing netfilter rules"))?;
    // Created before the route so that a failure below removes the rules again.
    let capture = Capture {
        set,
        route_table: Some(route_table),
    };
    iptables::install_local_route(fw_mark, route_table)
        .with_context(|| format!("{field}: installing the fwmark policy route"))?;
    Ok(capture)
}

/// Binds the transparent listener of an ingress and installs its TPROXY rules.
pub fn ingress(id: usize, config: &IngressNetfilter) -> anyhow::Result<(TcpListener, Capture)> {
    let field = format!("add_ingress[{id}].netfilter");
    let selection = prepare(
        &field,
        true,
        &config.capture_dst,
        &config.capture_cgroup,
        &config.nocapture_cgroup,
    )?;
    let addr = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::LOCALHOST,
        config.listen_port.unwrap_or(0),
    ));
    let std_listener = tng_capture::socket::transparent_listener(addr)
        .with_context(|| format!("{field}: cannot open a transparent listener on {addr}"))?;
    let listener = TcpListener::from_std(std_listener)?;
    let listen_port = listener.local_addr()?.port();
    let rules = IngressRules {
        id,
        listen_port,
        so_mark: config.so_mark,
        selection,
    };
    let capture = install_tproxy(&field, rules.render(), rules.fw_mark(), rules.route_table())?;
    info!(ingress = id, listen_port, "netfilter capture installed");
    Ok((listener, capture))
}

/// Binds the listener of an egress and installs its REDIRECT rules.
pub fn egress(id: usize, config: &EgressNetfilter) -> anyhow::Result<(TcpSocket, Capture)> {
    let field = format!("add_egress[{id}].netfilter");
    let selection = prepare(
        &field,
        false,
        &config.capture_dst,
        &config.capture_cgroup,
        &config.nocapture_cgroup,
    )?;
    let addr = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::UNSPECIFIED,
        config.listen_port.unwrap_or(0),
    ));
    let listener =
        bind_unlistened(addr).with_context(|| format!("{field}: cannot listen on {addr}"))?;
    let listen_port = listener.local_addr()?.port();
    let rules = EgressRules {
        id,
        listen_port,
        so_mark: config.so_mark,
        capture_local_traffic: config.capture_local_traffic,
        selection,
    };
    let set = rules.render();
    iptables::install(&set).with_context(|| format!("{field}: installing netfilter rules"))?;
    info!(egress = id, listen_port, "netfilter capture installed");
    Ok((
        listener,
        Capture {
            set,
            route_table: None,
        },
    ))
}

/// A free port for a netfilter listener whose configuration names none, chosen before the
/// entry is built so that everything describing the entry (its metric labels too) knows it.
pub fn free_listen_port(ip: Ipv4Addr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}
