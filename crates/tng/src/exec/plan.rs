//! What `tng exec` decides before anything runs: which entries it accepts (only hook modes),
//! which ports the hooks use, and the tables handed to the library in the environment.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use serde::Serialize;
use tng_config::{Config, EgressMode, IngressMode};

fn ingress_mode(mode: &IngressMode) -> &'static str {
    match mode {
        IngressMode::Mapping(_) => "mapping",
        IngressMode::HttpProxy(_) => "http_proxy",
        IngressMode::Netfilter(_) => "netfilter",
        IngressMode::Socks5(_) => "socks5",
        IngressMode::MappingUdp(_) => "mapping_udp",
        IngressMode::NetfilterUdp(_) => "netfilter_udp",
        IngressMode::Hook(_) => "hook",
    }
}

fn egress_mode(mode: &EgressMode) -> &'static str {
    match mode {
        EgressMode::Mapping(_) => "mapping",
        EgressMode::Netfilter(_) => "netfilter",
        EgressMode::MappingUdp(_) => "mapping_udp",
        EgressMode::NetfilterUdp(_) => "netfilter_udp",
        EgressMode::Hook(_) => "hook",
    }
}

/// `tng launch` refuses hook entries: without the preloaded library nothing feeds them.
pub fn check_launch(config: &Config) -> Result<(), String> {
    for ingress in &config.ingress {
        if matches!(ingress.mode, IngressMode::Hook(_)) {
            return Err(format!(
                "Ingress entry {} uses 'hook' mode, which is only allowed via `tng exec`, not `tng launch`",
                ingress.id
            ));
        }
    }
    for egress in &config.egress {
        if matches!(egress.mode, EgressMode::Hook(_)) {
            return Err(format!(
                "Egress entry {} uses 'hook' mode, which is only allowed via `tng exec`, not `tng launch`",
                egress.id
            ));
        }
    }
    Ok(())
}

/// `tng exec` accepts hook entries only, at least one, each with something to capture.
pub fn check_exec(config: &Config) -> Result<(), String> {
    if config.ingress.is_empty() && config.egress.is_empty() {
        return Err("tng exec requires at least one add_ingress or add_egress entry".into());
    }
    for ingress in &config.ingress {
        match &ingress.mode {
            IngressMode::Hook(hook) if hook.capture_dst.is_empty() => {
                return Err(format!(
                    "Ingress entry {} has 'hook' mode but no capture_dst entries",
                    ingress.id
                ))
            }
            IngressMode::Hook(_) => {}
            other => {
                return Err(format!(
                    "tng exec only supports 'hook' mode ingress, but ingress entry {} uses a '{}' mode. Use `tng launch` for non-hook modes.",
                    ingress.id,
                    ingress_mode(other)
                ))
            }
        }
    }
    for egress in &config.egress {
        match &egress.mode {
            EgressMode::Hook(hook) if hook.capture_listen.is_empty() => {
                return Err(format!(
                    "Egress entry {} has 'hook' mode but no capture_listen entries",
                    egress.id
                ))
            }
            EgressMode::Hook(_) => {}
            other => {
                return Err(format!(
                    "tng exec only supports 'hook' mode egress, but egress entry {} uses a '{}' mode. Use `tng launch` for non-hook modes.",
                    egress.id,
                    egress_mode(other)
                ))
            }
        }
    }
    Ok(())
}

/// Hands out ports for the whole run: a port is given to one claim only.
struct Ports {
    claimed: BTreeSet<u16>,
    /// Origin ports of the egress hooks: TNG listens there, so nothing else may take them.
    reserved: BTreeSet<u16>,
}

impl Ports {
    fn claim(&mut self, port: u16) -> bool {
        self.claimed.insert(port)
    }

    /// A port that is free now (TCP on every address), outside every claim.
    fn allocate(&mut self) -> Result<u16, String> {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let port = rng.gen_range(15000..25000);
            if self.is_usable(port) && is_free(port) {
                self.claimed.insert(port);
                return Ok(port);
            }
        }
        for _ in 0..20 {
            let port = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| format!("cannot find a free port: {e}"))?;
            if self.is_usable(port) {
                self.claimed.insert(port);
                return Ok(port);
            }
        }
        Err("cannot find a free port".into())
    }

    fn is_usable(&self, port: u16) -> bool {
        !self.claimed.contains(&port) && !self.reserved.contains(&port)
    }
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// Fixes every port the hooks use: `proxy_port` of each ingress hook, the (origin, real)
/// pairs of each egress hook.
pub fn allocate_ports(config: &mut Config) -> Result<(), String> {
    let mut ports = Ports {
        claimed: BTreeSet::new(),
        reserved: BTreeSet::new(),
    };
    let mut origin_to_real: BTreeMap<u16, u16> = BTreeMap::new();
    let mut real_to_origin: BTreeMap<u16, u16> = BTreeMap::new();
    let mut expanded = Vec::new();
    for egress in &config.egress {
        let EgressMode::Hook(hook) = &egress.mode else {
            continue;
        };
        let mut pairs = Vec::new();
        for (i, listen) in hook.capture_listen.iter().enumerate() {
            let entry = listen.expand().map_err(|m| {
                format!(
                    "add_egress[{}].hook.capture_listen[{i}]: Failed to expand intercept entry: {m}",
                    egress.id
                )
            })?;
            for (origin, _) in &entry {
                ports.reserved.insert(*origin);
            }
            pairs.push(entry);
        }
        expanded.push(pairs);
    }
    // Explicit ports first, so an automatic one never takes a port someone asked for.
    for pairs in &expanded {
        for (origin, real) in pairs.iter().flatten() {
            if let Some(real) = real {
                check_pair(&mut origin_to_real, &mut real_to_origin, *origin, *real)?;
                if !ports.claim(*real) && origin_to_real.get(origin) != Some(real) {
                    return Err(format!(
                        "Conflict: port {real} is already claimed by another entry"
                    ));
                }
            }
        }
    }
    for ingress in &config.ingress {
        if let IngressMode::Hook(hook) = &ingress.mode {
            if let Some(port) = hook.proxy_port {
                if !ports.claim(port) || ports.reserved.contains(&port) {
                    return Err(format!(
                        "Failed to use ingress proxy port {port}: Conflict: port {port} is already claimed by another entry"
                    ));
                }
            }
        }
    }
    let mut resolved = Vec::new();
    for pairs in expanded {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (origin, real) in pairs.into_iter().flatten() {
            let real = match (real, origin_to_real.get(&origin)) {
                (Some(real), _) => real,
                (None, Some(real)) => *real,
                (None, None) => {
                    let real = ports.allocate()?;
                    check_pair(&mut origin_to_real, &mut real_to_origin, origin, real)?;
                    real
                }
            };
            if !out.iter().any(|(o, _)| *o == origin) {
                out.push((origin, real));
            }
        }
        resolved.push(out);
    }
    let mut resolved = resolved.into_iter();
    for egress in &mut config.egress {
        if let EgressMode::Hook(hook) = &mut egress.mode {
            hook.ports = resolved.next().unwrap_or_default();
        }
    }
    for ingress in &mut config.ingress {
        if let IngressMode::Hook(hook) = &mut ingress.mode {
            if hook.proxy_port.is_none() {
                hook.proxy_port = Some(
                    ports
                        .allocate()
                        .map_err(|m| format!("Failed to allocate an ingress proxy port: {m}"))?,
                );
            }
        }
    }
    Ok(())
}

/// One origin port maps to one real port and back.
fn check_pair(
    origin_to_real: &mut BTreeMap<u16, u16>,
    real_to_origin: &mut BTreeMap<u16, u16>,
    origin: u16,
    real: u16,
) -> Result<(), String> {
    if let Some(existing) = origin_to_real.get(&origin) {
        if *existing != real {
            return Err(format!(
                "Conflict: origin port {origin} is mapped to both {existing} and {real}"
            ));
        }
    }
    if let Some(existing) = real_to_origin.get(&real) {
        if *existing != origin {
            return Err(format!(
                "Conflict: port {real} is already claimed by another entry (origin ports {existing} and {origin})"
            ));
        }
    }
    origin_to_real.insert(origin, real);
    real_to_origin.insert(real, origin);
    Ok(())
}

#[derive(Serialize)]
struct IngressTable {
    ingresses: Vec<IngressTableEntry>,
}

#[derive(Serialize)]
struct IngressTableEntry {
    proxy_port: u16,
    capture_rules: Vec<CaptureRule>,
    capture_local_traffic: bool,
}

#[derive(Serialize)]
struct CaptureRule {
    host_cidr: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    port_end: Option<u16>,
}

#[derive(Serialize)]
struct EgressTable {
    entries: Vec<EgressTableEntry>,
}

#[derive(Serialize)]
struct EgressTableEntry {
    origin_port: u16,
    real_port: u16,
}

/// `TNG_HOOK_INGRESS_MAPPINGS` (always) and `TNG_HOOK_EGRESS_MAPPINGS` (only with an egress
/// hook), after [`allocate_ports`].
pub fn hook_tables(config: &Config) -> (String, Option<String>) {
    let ingresses = config
        .ingress
        .iter()
        .filter_map(|i| match &i.mode {
            IngressMode::Hook(hook) => Some(IngressTableEntry {
                proxy_port: hook.proxy_port.unwrap_or(0),
                capture_rules: hook
                    .capture_dst
                    .iter()
                    .map(|dst| CaptureRule {
                        host_cidr: match dst.host {
                            None => "*".into(),
                            Some((ip, 32)) => ip.to_string(),
                            Some((ip, prefix)) => format!("{ip}/{prefix}"),
                        },
                        port: dst.port,
                        port_end: dst.port_end,
                    })
                    .collect(),
                capture_local_traffic: hook.capture_local_traffic,
            }),
            _ => None,
        })
        .collect();
    let ingress = serde_json::to_string(&IngressTable { ingresses }).unwrap_or_default();
    let mut entries: Vec<EgressTableEntry> = Vec::new();
    let mut any_egress = false;
    for egress in &config.egress {
        if let EgressMode::Hook(hook) = &egress.mode {
            any_egress = true;
            for (origin, real) in &hook.ports {
                if !entries.iter().any(|e| e.origin_port == *origin) {
                    entries.push(EgressTableEntry {
                        origin_port: *origin,
                        real_port: *real,
                    });
                }
            }
        }
    }
    let egress =
        any_egress.then(|| serde_json::to_string(&EgressTable { entries }).unwrap_or_default());
    (ingress, egress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_config(json: &str) -> Result<Config, String> {
        let mut config = tng_config::parse(json).map_err(|e| e.to_string())?;
        check_exec(&config)?;
        allocate_ports(&mut config)?;
        Ok(config)
    }

    #[test]
    fn tables_have_the_upstream_shape() {
        let config = exec_config(
            r#"{"add_ingress":[{"hook":{"proxy_port":22681,"capture_dst":[{"host":"127.0.0.1","port":30001},{"port":30010,"port_end":30012}],"capture_local_traffic":true},"no_ra":true}],
                "add_egress":[{"hook":{"capture_listen":[{"port":30006,"port_end":30007,"redirect_to_port":41006,"redirect_to_port_end":41007}]},"no_ra":true}]}"#,
        )
        .unwrap();
        let (ingress, egress) = hook_tables(&config);
        assert_eq!(
            ingress,
            r#"{"ingresses":[{"proxy_port":22681,"capture_rules":[{"host_cidr":"127.0.0.1","port":30001},{"host_cidr":"*","port":30010,"port_end":30012}],"capture_local_traffic":true}]}"#
        );
        assert_eq!(
            egress.unwrap(),
            r#"{"entries":[{"origin_port":30006,"real_port":41006},{"origin_port":30007,"real_port":41007}]}"#
        );
    }

    #[test]
    fn auto_ports_are_distinct_and_in_the_band() {
        let config = exec_config(
            r#"{"add_ingress":[{"hook":{"capture_dst":{"host":"10.0.0.0/24","port":80}},"no_ra":true}],
                "add_egress":[{"hook":{"capture_listen":[{"port":30005},{"port":30008,"port_end":30009}]},"no_ra":true}]}"#,
        )
        .unwrap();
        let EgressMode::Hook(hook) = &config.egress[0].mode else {
            panic!()
        };
        let IngressMode::Hook(ingress) = &config.ingress[0].mode else {
            panic!()
        };
        let mut all: Vec<u16> = hook.ports.iter().map(|p| p.1).collect();
        all.push(ingress.proxy_port.unwrap());
        let origins: Vec<u16> = hook.ports.iter().map(|p| p.0).collect();
        assert_eq!(origins, [30005, 30008, 30009]);
        let unique: BTreeSet<u16> = all.iter().copied().collect();
        assert_eq!(unique.len(), 4);
        assert!(all.iter().all(|p| (15000..25000).contains(p)), "{all:?}");
        let (ingress, _) = hook_tables(&config);
        assert!(
            ingress.contains(r#""host_cidr":"10.0.0.0/24""#),
            "{ingress}"
        );
    }

    #[test]
    fn conflicts_are_refused() {
        let err = exec_config(
            r#"{"add_ingress":[{"hook":{"proxy_port":41006,"capture_dst":{"port":80}},"no_ra":true}],
                "add_egress":[{"hook":{"capture_listen":{"port":30006,"redirect_to_port":41006}},"no_ra":true}]}"#,
        )
        .unwrap_err();
        assert_eq!(err, "Failed to use ingress proxy port 41006: Conflict: port 41006 is already claimed by another entry");
        let err = exec_config(
            r#"{"add_egress":[{"hook":{"capture_listen":[{"port":30006,"redirect_to_port":41006},{"port":30007,"redirect_to_port":41006}]},"no_ra":true}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("Conflict: port 41006 is already claimed by another entry"),
            "{err}"
        );
        let err = exec_config(
            r#"{"add_egress":[{"hook":{"capture_listen":[{"port":30006,"redirect_to_port":41006},{"port":30006,"redirect_to_port":41007}]},"no_ra":true}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "Conflict: origin port 30006 is mapped to both 41006 and 41007"
        );
    }

    #[test]
    fn modes_are_checked() {
        let err = exec_config(r#"{}"#).unwrap_err();
        assert_eq!(
            err,
            "tng exec requires at least one add_ingress or add_egress entry"
        );
        let err = exec_config(
            r#"{"add_ingress":[{"mapping":{"in":{"port":1},"out":{"host":"127.0.0.1","port":2}},"no_ra":true}]}"#,
        )
        .unwrap_err();
        assert_eq!(err, "tng exec only supports 'hook' mode ingress, but ingress entry 0 uses a 'mapping' mode. Use `tng launch` for non-hook modes.");
        let err = exec_config(r#"{"add_ingress":[{"hook":{"capture_dst":[]},"no_ra":true}]}"#)
            .unwrap_err();
        assert_eq!(
            err,
            "Ingress entry 0 has 'hook' mode but no capture_dst entries"
        );
        let err = exec_config(r#"{"add_egress":[{"hook":{"capture_listen":[]},"no_ra":true}]}"#)
            .unwrap_err();
        assert_eq!(
            err,
            "Egress entry 0 has 'hook' mode but no capture_listen entries"
        );
        let config = tng_config::parse(
            r#"{"add_egress":[{"hook":{"capture_listen":{"port":1}},"no_ra":true}]}"#,
        )
        .unwrap();
        assert_eq!(
            check_launch(&config).unwrap_err(),
            "Egress entry 0 uses 'hook' mode, which is only allowed via `tng exec`, not `tng launch`"
        );
    }
}
