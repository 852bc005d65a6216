use std::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{ConfigError, Result};
use crate::filter::parse_ipv4;
use crate::json::{index_path, Field};

/// `count` consecutive ports starting at `in_addr` forward to the same number of ports starting
/// at `out_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRule {
    pub in_addr: SocketAddrV4,
    pub out_addr: SocketAddrV4,
    /// At least 1; the parser guarantees both ranges end at or below port 65535.
    pub count: u16,
}

impl MappingRule {
    /// Every (listen, forward-to) pair of the rule.
    pub fn pairs(&self) -> impl Iterator<Item = (SocketAddrV4, SocketAddrV4)> {
        let (listen, forward) = (self.in_addr, self.out_addr);
        // wrapping_add never wraps for parsed rules; it only keeps hand-built ones panic-free.
        (0..self.count).map(move |k| {
            (
                SocketAddrV4::new(*listen.ip(), listen.port().wrapping_add(k)),
                SocketAddrV4::new(*forward.ip(), forward.port().wrapping_add(k)),
            )
        })
    }

    fn in_end(&self) -> u32 {
        u32::from(self.in_addr.port()) + u32::from(self.count) - 1
    }
}

struct RuleEnd {
    host: Option<Ipv4Addr>,
    port: u16,
    end: u16,
}

fn parse_end(field: &Field<'_>, ranges_allowed: bool) -> Result<RuleEnd> {
    let mut obj = field.object()?;
    let host = obj.opt("host").map(|f| parse_ipv4(&f)).transpose()?;
    let port = obj.req("port")?.u16()?;
    let end = match obj.opt("port_end") {
        None => port,
        // Upstream silently drops a legacy `port_end`, listening on one port where the user
        // asked for a range; refusing is the only honest answer.
        Some(f) if !ranges_allowed => {
            return Err(f.err("port ranges need the rules form (`mapping.rules`)"));
        }
        Some(f) => {
            let end = f.u16()?;
            if end < port {
                return Err(f.err(format!("must be >= port ({port})")));
            }
            end
        }
    };
    obj.finish(&["host", "port", "port_end"])?;
    Ok(RuleEnd { host, port, end })
}

fn parse_rule(
    path: &str,
    in_field: &Field<'_>,
    out_field: &Field<'_>,
    ranges: bool,
) -> Result<MappingRule> {
    let listen = parse_end(in_field, ranges)?;
    let forward = parse_end(out_field, ranges)?;
    let out_host = forward
        .host
        .ok_or_else(|| ConfigError::new(format!("{}.host", out_field.path), "required"))?;
    let in_size = u32::from(listen.end - listen.port) + 1;
    let out_size = u32::from(forward.end - forward.port) + 1;
    if in_size != out_size {
        return Err(ConfigError::new(
            path,
            format!("the in range has {in_size} ports but the out range has {out_size}; they must be the same size"),
        ));
    }
    let count = u16::try_from(in_size)
        .map_err(|_| ConfigError::new(path, "a rule may cover at most 65535 ports"))?;
    Ok(MappingRule {
        in_addr: SocketAddrV4::new(listen.host.unwrap_or(Ipv4Addr::UNSPECIFIED), listen.port),
        out_addr: SocketAddrV4::new(out_host, forward.port),
        count,
    })
}

/// Both upstream shapes: `{"rules": [...]}` and the legacy `{"in": ..., "out": ...}`.
pub(crate) fn parse_mapping(field: &Field<'_>) -> Result<Vec<MappingRule>> {
    let mut obj = field.object()?;
    let Some(rules_field) = obj.field("rules") else {
        if !obj.has("in") && !obj.has("out") {
            return Err(obj.err("`rules` is required (or the legacy pair `in` and `out`)"));
        }
        let in_field = obj.req("in")?;
        let out_field = obj.req("out")?;
        obj.finish(&["rules", "in", "out"])?;
        return Ok(vec![parse_rule(&field.path, &in_field, &out_field, false)?]);
    };
    // Upstream ignores `in`/`out` next to `rules`; a half-migrated config deserves an error.
    for legacy in ["in", "out"] {
        if obj.has(legacy) {
            return Err(obj.err(format!(
                "`{legacy}` (legacy form) cannot be combined with `rules`"
            )));
        }
    }
    obj.finish(&["rules"])?;
    let items = rules_field.array()?;
    if items.is_empty() {
        return Err(rules_field.err("at least one mapping rule is required"));
    }
    let mut rules: Vec<MappingRule> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut rule_obj = item.object()?;
        let in_field = rule_obj.req("in")?;
        let out_field = rule_obj.req("out")?;
        rule_obj.finish(&["in", "out"])?;
        let rule = parse_rule(&item.path, &in_field, &out_field, true)?;
        let overlapping = rules.iter().position(|earlier| {
            earlier.in_addr.ip() == rule.in_addr.ip()
                && u32::from(earlier.in_addr.port()) <= rule.in_end()
                && u32::from(rule.in_addr.port()) <= earlier.in_end()
        });
        if let Some(j) = overlapping {
            return Err(ConfigError::new(
                format!("{}.in", index_path(&rules_field.path, i)),
                format!(
                    "overlaps the in range of rules[{j}] on host {}",
                    rule.in_addr.ip()
                ),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}
