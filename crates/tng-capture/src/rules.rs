//! The netfilter rule sets, rendered as `iptables-restore` input.
//!
//! Layout and chain names follow upstream TNG exactly (so operators' runbooks and upstream's
//! own cleanup keep working): the ingress marks locally generated TCP in mangle OUTPUT, routes
//! it to `lo` by fwmark and TPROXYs it to its listener; the egress REDIRECTs in nat.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// One `capture_dst` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: Option<(Ipv4Addr, u8)>,
    pub ipset: Option<String>,
    pub ports: Option<(u16, u16)>,
}

impl Destination {
    /// The match part of a capture rule for `proto` (`tcp` or `udp`).
    pub(crate) fn matcher_for(&self, proto: &str) -> String {
        let mut m = format!("-p {proto}");
        if let Some((addr, len)) = self.host {
            let _ = write!(m, " -d {addr}/{len}");
        }
        if let Some(set) = &self.ipset {
            let _ = write!(m, " -m set --match-set {set} dst");
        }
        match self.ports {
            Some((p, e)) if p == e => {
                let _ = write!(m, " --dport {p}");
            }
            Some((p, e)) => {
                let _ = write!(m, " --dport {p}:{e}");
            }
            None => {}
        }
        m
    }
}

/// What to capture, shared by both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub destinations: Vec<Destination>,
    pub cgroups: Vec<String>,
    pub excluded_cgroups: Vec<String>,
}

impl Selection {
    pub(crate) fn matchers_for(&self, proto: &str) -> Vec<String> {
        if self.destinations.is_empty() {
            vec![format!("-p {proto}")]
        } else {
            self.destinations
                .iter()
                .map(|d| d.matcher_for(proto))
                .collect()
        }
    }
}

/// A rule set: an `iptables-restore --noflush` document for one table, plus the names of the
/// chains it owns (removal deletes them and every jump into them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub table: &'static str,
    pub chains: Vec<String>,
    pub restore: String,
}

pub struct IngressRules {
    pub id: usize,
    pub listen_port: u16,
    pub so_mark: u32,
    pub selection: Selection,
}

impl IngressRules {
    pub fn fw_mark(&self) -> u32 {
        566 + self.id as u32
    }

    pub fn route_table(&self) -> u32 {
        239 + self.id as u32
    }

    pub fn chain_prefix(id: usize) -> String {
        format!("TNG_INGRESS_{id}_")
    }

    pub fn render(&self) -> RuleSet {
        let id = self.id;
        let chains = [
            format!("TNG_INGRESS_{id}_PREROUTING"),
            format!("TNG_INGRESS_{id}_OUTPUT_STAGE_1"),
            format!("TNG_INGRESS_{id}_OUTPUT_STAGE_2"),
        ];
        let restore = ingress_restore(
            "tcp",
            &chains,
            self.fw_mark(),
            self.listen_port,
            self.so_mark,
            &self.selection,
        );
        RuleSet {
            table: "mangle",
            chains: chains.to_vec(),
            restore,
        }
    }
}

/// The ingress layout TCP and UDP share (mangle table): locally generated packets to the
/// captured destinations are marked in OUTPUT, routed to `lo` by the fwmark policy route and
/// TPROXYed in PREROUTING to the listener on 127.0.0.1. `chains`: PREROUTING, OUTPUT stage 1
/// and stage 2.
pub(crate) fn ingress_restore(
    proto: &str,
    chains: &[String; 3],
    mark: u32,
    listen_port: u16,
    so_mark: u32,
    selection: &Selection,
) -> String {
    let [pre, out1, out2] = chains;
    let mut r = String::from("*mangle\n");
    for chain in chains {
        let _ = writeln!(r, ":{chain} - [0:0]");
    }
    // Only locally generated packets to remote unicast addresses are ours to capture; replies
    // to local clients (from a remote source) pass untouched.
    for chain in [pre, out1] {
        let _ = writeln!(r, "-A {chain} -m addrtype --dst-type LOCAL -j RETURN");
        let _ = writeln!(r, "-A {chain} -m addrtype ! --dst-type UNICAST -j RETURN");
        let _ = writeln!(r, "-A {chain} -m addrtype ! --src-type LOCAL -j RETURN");
    }
    let _ = writeln!(
        r,
        // Only packets this ingress marked: with several ingresses each takes its own.
        "-A {pre} -p {proto} -m mark --mark {mark}/0xffffff -j TPROXY --on-port {listen_port} --on-ip 127.0.0.1 --tproxy-mark {mark}/0xffffff"
    );
    // Our own outbound sockets carry so_mark and must never loop back into us.
    let _ = writeln!(r, "-A {out1} -p {proto} -m mark --mark {so_mark} -j RETURN");
    if selection.cgroups.is_empty() {
        let _ = writeln!(r, "-A {out1} -j {out2}");
    } else {
        for cg in &selection.cgroups {
            let _ = writeln!(r, "-A {out1} -m cgroup --path {cg} -j {out2}");
        }
    }
    for cg in &selection.excluded_cgroups {
        let _ = writeln!(r, "-A {out2} -m cgroup --path {cg} -j RETURN");
    }
    for m in selection.matchers_for(proto) {
        let _ = writeln!(r, "-A {out2} {m} -j MARK --set-xmark {mark}/0xffffff");
    }
    let _ = writeln!(r, "-I PREROUTING 1 -p {proto} -j {pre}");
    let _ = writeln!(r, "-I OUTPUT 1 -p {proto} -j {out1}");
    r.push_str("COMMIT\n");
    r
}

pub struct EgressRules {
    pub id: usize,
    pub listen_port: u16,
    pub so_mark: u32,
    pub capture_local_traffic: bool,
    pub selection: Selection,
}

impl EgressRules {
    pub fn chain_prefix(id: usize) -> String {
        format!("TNG_EGRESS_{id}")
    }

    pub fn render(&self) -> RuleSet {
        let chains = [
            format!("TNG_EGRESS_{}", self.id),
            format!("TNG_EGRESS_{}_CGROUP", self.id),
        ];
        let restore = EgressLayout {
            table: "nat",
            chains: &chains,
            proto: "tcp",
            own_packets: format!("-p tcp -m mark --mark {}", self.so_mark),
            capture_local_traffic: self.capture_local_traffic,
            selection: &self.selection,
            target: format!("REDIRECT --to-ports {}", self.listen_port),
            hooks: &["PREROUTING", "OUTPUT"],
        }
        .render();
        RuleSet {
            table: "nat",
            chains: chains.to_vec(),
            restore,
        }
    }
}

/// The egress layout TCP and UDP share: one chain, plus one for `capture_cgroup`, that lets
/// our own marked packets through and sends the captured destinations to `target`, entered
/// from `hooks`.
pub(crate) struct EgressLayout<'a> {
    pub table: &'static str,
    /// The main chain and the cgroup chain. Both are listed for removal even when the cgroup
    /// chain is unused: a previous run with another configuration may have left it behind.
    pub chains: &'a [String; 2],
    pub proto: &'a str,
    /// The match of the rule that returns packets carrying our `so_mark`.
    pub own_packets: String,
    pub capture_local_traffic: bool,
    pub selection: &'a Selection,
    pub target: String,
    pub hooks: &'a [&'a str],
}

impl EgressLayout<'_> {
    pub(crate) fn render(&self) -> String {
        let [main, cgroup_chain] = self.chains;
        let uses_cgroups = !self.selection.cgroups.is_empty();
        let capture_chain = if uses_cgroups { cgroup_chain } else { main };
        let mut r = format!("*{}\n", self.table);
        let _ = writeln!(r, ":{main} - [0:0]");
        if uses_cgroups {
            let _ = writeln!(r, ":{cgroup_chain} - [0:0]");
        }
        let _ = writeln!(r, "-A {main} {} -j RETURN", self.own_packets);
        if uses_cgroups {
            for cg in &self.selection.cgroups {
                let _ = writeln!(r, "-A {main} -m cgroup --path {cg} -j {cgroup_chain}");
            }
            let _ = writeln!(r, "-A {main} -j RETURN");
        }
        for cg in &self.selection.excluded_cgroups {
            let _ = writeln!(r, "-A {capture_chain} -m cgroup --path {cg} -j RETURN");
        }
        // Without capture_local_traffic, traffic from this host (a co-located nginx, the
        // service's replies to our backend sockets) keeps going straight to the service.
        let local = if self.capture_local_traffic {
            ""
        } else {
            " -m addrtype ! --src-type LOCAL"
        };
        for m in self.selection.matchers_for(self.proto) {
            let (proto, rest) = m.split_at(3 + self.proto.len()); // "-p tcp"
            let _ = writeln!(
                r,
                "-A {capture_chain} {proto}{local}{rest} -j {}",
                self.target
            );
        }
        for hook in self.hooks {
            let _ = writeln!(r, "-I {hook} 1 -p {} -j {main}", self.proto);
        }
        r.push_str("COMMIT\n");
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(p: u16) -> Destination {
        Destination {
            host: None,
            ipset: None,
            ports: Some((p, p)),
        }
    }

    #[test]
    fn ingress_rule_set_matches_upstream_layout() {
        let rules = IngressRules {
            id: 0,
            listen_port: 40001,
            so_mark: 565,
            selection: Selection {
                destinations: vec![
                    port(8080),
                    Destination {
                        host: Some(("198.18.0.0".parse().unwrap(), 15)),
                        ipset: None,
                        ports: Some((9000, 9010)),
                    },
                ],
                ..Default::default()
            },
        };
        let set = rules.render();
        assert_eq!(
            set.restore,
            "*mangle\n\
             :TNG_INGRESS_0_PREROUTING - [0:0]\n\
             :TNG_INGRESS_0_OUTPUT_STAGE_1 - [0:0]\n\
             :TNG_INGRESS_0_OUTPUT_STAGE_2 - [0:0]\n\
             -A TNG_INGRESS_0_PREROUTING -m addrtype --dst-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_0_PREROUTING -m addrtype ! --dst-type UNICAST -j RETURN\n\
             -A TNG_INGRESS_0_PREROUTING -m addrtype ! --src-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_1 -m addrtype --dst-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_1 -m addrtype ! --dst-type UNICAST -j RETURN\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_1 -m addrtype ! --src-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_0_PREROUTING -p tcp -m mark --mark 566/0xffffff -j TPROXY --on-port 40001 --on-ip 127.0.0.1 --tproxy-mark 566/0xffffff\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_1 -p tcp -m mark --mark 565 -j RETURN\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_1 -j TNG_INGRESS_0_OUTPUT_STAGE_2\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_2 -p tcp --dport 8080 -j MARK --set-xmark 566/0xffffff\n\
             -A TNG_INGRESS_0_OUTPUT_STAGE_2 -p tcp -d 198.18.0.0/15 --dport 9000:9010 -j MARK --set-xmark 566/0xffffff\n\
             -I PREROUTING 1 -p tcp -j TNG_INGRESS_0_PREROUTING\n\
             -I OUTPUT 1 -p tcp -j TNG_INGRESS_0_OUTPUT_STAGE_1\n\
             COMMIT\n"
        );
        assert_eq!(rules.fw_mark(), 566);
        assert_eq!(rules.route_table(), 239);
    }

    #[test]
    fn egress_rule_set_with_and_without_local_traffic() {
        let mut rules = EgressRules {
            id: 1,
            listen_port: 40002,
            so_mark: 565,
            capture_local_traffic: false,
            selection: Selection {
                destinations: vec![port(8080)],
                ..Default::default()
            },
        };
        assert_eq!(
            rules.render().restore,
            "*nat\n:TNG_EGRESS_1 - [0:0]\n\
             -A TNG_EGRESS_1 -p tcp -m mark --mark 565 -j RETURN\n\
             -A TNG_EGRESS_1 -p tcp -m addrtype ! --src-type LOCAL --dport 8080 -j REDIRECT --to-ports 40002\n\
             -I PREROUTING 1 -p tcp -j TNG_EGRESS_1\n\
             -I OUTPUT 1 -p tcp -j TNG_EGRESS_1\n\
             COMMIT\n"
        );
        rules.capture_local_traffic = true;
        rules.selection.destinations = vec![Destination {
            host: None,
            ipset: Some("svc".into()),
            ports: None,
        }];
        assert!(rules.render().restore.contains(
            "-A TNG_EGRESS_1 -p tcp -m set --match-set svc dst -j REDIRECT --to-ports 40002\n"
        ));
    }

    #[test]
    fn egress_cgroup_branch_uses_its_own_chain() {
        let rules = EgressRules {
            id: 0,
            listen_port: 1,
            so_mark: 565,
            capture_local_traffic: true,
            selection: Selection {
                destinations: vec![],
                cgroups: vec!["/svc".into()],
                excluded_cgroups: vec!["/svc/sidecar".into()],
            },
        };
        let set = rules.render();
        assert_eq!(
            set.chains,
            vec![
                "TNG_EGRESS_0".to_string(),
                "TNG_EGRESS_0_CGROUP".to_string()
            ]
        );
        assert!(set.restore.contains("-A TNG_EGRESS_0 -m cgroup --path /svc -j TNG_EGRESS_0_CGROUP\n-A TNG_EGRESS_0 -j RETURN\n"));
        assert!(set
            .restore
            .contains("-A TNG_EGRESS_0_CGROUP -m cgroup --path /svc/sidecar -j RETURN\n"));
        assert!(set
            .restore
            .contains("-A TNG_EGRESS_0_CGROUP -p tcp -j REDIRECT --to-ports 1\n"));
    }
}
