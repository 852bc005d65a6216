//! The `netfilter_udp` rule sets (mangle table, TPROXY on both sides).
//!
//! Chain names, marks and routing tables follow upstream TNG, so a mixed fleet's runbooks and
//! cleanup keep working: the ingress marks locally generated datagrams in OUTPUT, routes them
//! to `lo` by fwmark and TPROXYs them to its listener on 127.0.0.1; the egress TPROXYs inbound
//! datagrams for the captured destinations to its listener on 0.0.0.0. Both need the fwmark
//! policy route (`ip rule` + `local default dev lo`) that [`UdpIngressRules::route_table`] /
//! [`UdpEgressRules::route_table`] name.

use crate::rules::{ingress_restore, EgressLayout, RuleSet, Selection};

pub struct UdpIngressRules {
    pub id: usize,
    pub listen_port: u16,
    pub so_mark: u32,
    pub selection: Selection,
}

impl UdpIngressRules {
    pub fn fw_mark(&self) -> u32 {
        1590 + self.id as u32
    }

    pub fn route_table(&self) -> u32 {
        1263 + self.id as u32
    }

    pub fn render(&self) -> RuleSet {
        let id = self.id;
        let chains = [
            format!("TNG_INGRESS_UDP_{id}_PRE"),
            format!("TNG_INGRESS_UDP_{id}_OUT1"),
            format!("TNG_INGRESS_UDP_{id}_OUT2"),
        ];
        let restore = ingress_restore(
            "udp",
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

pub struct UdpEgressRules {
    pub id: usize,
    pub listen_port: u16,
    pub so_mark: u32,
    pub capture_local_traffic: bool,
    pub selection: Selection,
}

impl UdpEgressRules {
    pub fn fw_mark(&self) -> u32 {
        2614 + self.id as u32
    }

    pub fn route_table(&self) -> u32 {
        2287 + self.id as u32
    }

    pub fn render(&self) -> RuleSet {
        let chains = [
            format!("TNG_EGRESS_UDP_{}", self.id),
            format!("TNG_EGRESS_UDP_{}_CGROUP", self.id),
        ];
        let restore = EgressLayout {
            table: "mangle",
            chains: &chains,
            proto: "udp",
            own_packets: format!("-m mark --mark {}", self.so_mark),
            capture_local_traffic: self.capture_local_traffic,
            selection: &self.selection,
            target: format!(
                "TPROXY --on-port {} --on-ip 0.0.0.0 --tproxy-mark {}/0xffffff",
                self.listen_port,
                self.fw_mark()
            ),
            hooks: &["PREROUTING"],
        }
        .render();
        RuleSet {
            table: "mangle",
            chains: chains.to_vec(),
            restore,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::rules::Destination;

    fn dns() -> Destination {
        Destination {
            host: Some((Ipv4Addr::new(198, 18, 0, 2), 32)),
            ipset: None,
            ports: Some((5353, 5353)),
        }
    }

    #[test]
    fn ingress_rule_set_matches_upstream_layout() {
        let rules = UdpIngressRules {
            id: 0,
            listen_port: 40001,
            so_mark: 565,
            selection: Selection {
                destinations: vec![dns()],
                ..Selection::default()
            },
        };
        assert_eq!((rules.fw_mark(), rules.route_table()), (0x636, 1263));
        let set = rules.render();
        assert_eq!(set.table, "mangle");
        assert_eq!(
            set.chains,
            [
                "TNG_INGRESS_UDP_0_PRE",
                "TNG_INGRESS_UDP_0_OUT1",
                "TNG_INGRESS_UDP_0_OUT2"
            ]
        );
        assert_eq!(
            set.restore,
            "*mangle\n\
             :TNG_INGRESS_UDP_0_PRE - [0:0]\n\
             :TNG_INGRESS_UDP_0_OUT1 - [0:0]\n\
             :TNG_INGRESS_UDP_0_OUT2 - [0:0]\n\
             -A TNG_INGRESS_UDP_0_PRE -m addrtype --dst-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_UDP_0_PRE -m addrtype ! --dst-type UNICAST -j RETURN\n\
             -A TNG_INGRESS_UDP_0_PRE -m addrtype ! --src-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_UDP_0_OUT1 -m addrtype --dst-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_UDP_0_OUT1 -m addrtype ! --dst-type UNICAST -j RETURN\n\
             -A TNG_INGRESS_UDP_0_OUT1 -m addrtype ! --src-type LOCAL -j RETURN\n\
             -A TNG_INGRESS_UDP_0_PRE -p udp -m mark --mark 1590/0xffffff -j TPROXY --on-port 40001 --on-ip 127.0.0.1 --tproxy-mark 1590/0xffffff\n\
             -A TNG_INGRESS_UDP_0_OUT1 -p udp -m mark --mark 565 -j RETURN\n\
             -A TNG_INGRESS_UDP_0_OUT1 -j TNG_INGRESS_UDP_0_OUT2\n\
             -A TNG_INGRESS_UDP_0_OUT2 -p udp -d 198.18.0.2/32 --dport 5353 -j MARK --set-xmark 1590/0xffffff\n\
             -I PREROUTING 1 -p udp -j TNG_INGRESS_UDP_0_PRE\n\
             -I OUTPUT 1 -p udp -j TNG_INGRESS_UDP_0_OUT1\n\
             COMMIT\n"
        );
    }

    #[test]
    fn ingress_without_capture_dst_marks_all_udp() {
        let set = UdpIngressRules {
            id: 2,
            listen_port: 40001,
            so_mark: 7,
            selection: Selection::default(),
        }
        .render();
        assert!(set
            .restore
            .contains("-A TNG_INGRESS_UDP_2_OUT2 -p udp -j MARK --set-xmark 1592/0xffffff\n"));
    }

    #[test]
    fn egress_rule_set_with_and_without_local_traffic() {
        let mut rules = UdpEgressRules {
            id: 0,
            listen_port: 40002,
            so_mark: 565,
            capture_local_traffic: false,
            selection: Selection {
                destinations: vec![Destination {
                    host: None,
                    ipset: None,
                    ports: Some((5353, 5353)),
                }],
                ..Selection::default()
            },
        };
        assert_eq!((rules.fw_mark(), rules.route_table()), (0xa36, 2287));
        assert_eq!(
            rules.render().restore,
            "*mangle\n:TNG_EGRESS_UDP_0 - [0:0]\n\
             -A TNG_EGRESS_UDP_0 -m mark --mark 565 -j RETURN\n\
             -A TNG_EGRESS_UDP_0 -p udp -m addrtype ! --src-type LOCAL --dport 5353 -j TPROXY --on-port 40002 --on-ip 0.0.0.0 --tproxy-mark 2614/0xffffff\n\
             -I PREROUTING 1 -p udp -j TNG_EGRESS_UDP_0\n\
             COMMIT\n"
        );
        rules.capture_local_traffic = true;
        assert!(rules
            .render()
            .restore
            .contains("-A TNG_EGRESS_UDP_0 -p udp --dport 5353 -j TPROXY --on-port 40002"));
    }
}
