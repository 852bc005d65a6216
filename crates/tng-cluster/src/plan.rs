//! What a node does next, decided from its view of the cluster alone (no IO), so each rule —
//! who creates keys, who asks whom — is a unit test.

use std::time::Duration;

/// Another node as gossip shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    pub alive: bool,
    /// Holds an Active key (and so can hand the set over).
    pub ready: bool,
    pub keys_digest: String,
    /// Hex public key of the key it advertises ("" when none).
    pub advertised: String,
    /// A receive-only member (`tng tools key-sync`): it never holds keys for others and
    /// takes no part in starting a cold cluster.
    pub receive_only: bool,
}

#[derive(Clone, Debug)]
pub struct View<'a> {
    pub self_id: &'a str,
    /// This node holds an Active key.
    pub self_ready: bool,
    pub self_digest: &'a str,
    /// Peers are configured (`peers` or `peers_file` non-empty).
    pub has_peers: bool,
    /// Time since this node started gossiping.
    pub uptime: Duration,
    /// Gossip once knew other members and has since forgotten them all (they stayed
    /// unreachable past the failure detector's grace period).
    pub abandoned: bool,
    pub members: &'a [Member],
}

/// How long a node with peers watches the membership before it may take part in a cold start:
/// long enough for gossip to show which peers already hold keys.
pub const COLD_START_SETTLE: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Create the cluster's first key.
    pub bootstrap: bool,
    /// This node is the rotation leader.
    pub lead: bool,
    /// Ask these nodes for their key sets (they hold keys this node may lack).
    pub pull_from: Vec<String>,
}

impl View<'_> {
    /// The smallest id among live nodes holding keys, this one included.
    pub fn leader(&self) -> Option<&str> {
        let others = self
            .members
            .iter()
            .filter(|m| m.alive && m.ready)
            .map(|m| m.node_id.as_str());
        let own = self.self_ready.then_some(self.self_id);
        others.chain(own).min()
    }

    pub fn plan(&self) -> Plan {
        let live: Vec<&Member> = self.members.iter().filter(|m| m.alive).collect();
        // Receivers neither block a cold start (their id may be the smallest) nor count as
        // the live peer a node must see before it may start one.
        let live_holders: Vec<&Member> = live.iter().copied().filter(|m| !m.receive_only).collect();
        let any_ready = live.iter().any(|m| m.ready);
        let bootstrap = !self.self_ready
            && (!self.has_peers
                || self.abandoned
                || self.cold_start_is_mine(&live_holders, any_ready));
        let pull_from = live
            .iter()
            .filter(|m| m.ready && m.keys_digest != self.self_digest)
            .map(|m| m.node_id.clone())
            .collect();
        Plan {
            bootstrap,
            lead: self.self_ready && self.leader() == Some(self.self_id) && !self.isolated(),
            pull_from,
        }
    }

    /// Every known member is unreachable. Such a node creates no keys: its Active and Pending
    /// keys are the cluster's own lineage, so whatever it serves stays decryptable everywhere,
    /// and when that lineage moves past what it holds it simply runs out of Active keys and
    /// stops serving — instead of inventing keys the rest of the cluster has never seen (which
    /// a partition that heals would send traffic to).
    pub fn isolated(&self) -> bool {
        self.has_peers && !self.members.is_empty() && self.members.iter().all(|m| !m.alive)
    }

    /// A cold cluster (live peers, none holding keys) is started by its smallest member. A node
    /// that sees no live peer never creates keys: its peers may merely be unreachable, and
    /// keys it invented would be unknown to the cluster it is about to rejoin.
    fn cold_start_is_mine(&self, live: &[&Member], any_ready: bool) -> bool {
        !live.is_empty()
            && !any_ready
            && self.uptime >= COLD_START_SETTLE
            && live.iter().all(|m| self.self_id < m.node_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, alive: bool, ready: bool, digest: &str) -> Member {
        Member {
            node_id: id.into(),
            alive,
            ready,
            keys_digest: digest.into(),
            advertised: String::new(),
            receive_only: false,
        }
    }

    fn view<'a>(self_id: &'a str, ready: bool, has_peers: bool, members: &'a [Member]) -> View<'a> {
        View {
            self_id,
            self_ready: ready,
            self_digest: if ready { "d1" } else { "" },
            has_peers,
            uptime: Duration::from_secs(10),
            abandoned: false,
            members,
        }
    }

    #[test]
    fn a_node_without_peers_bootstraps_at_once_and_leads() {
        let plan = View {
            uptime: Duration::ZERO,
            ..view("n1", false, false, &[])
        }
        .plan();
        assert!(plan.bootstrap);
        let plan = view("n1", true, false, &[]).plan();
        assert_eq!(
            plan,
            Plan {
                bootstrap: false,
                lead: true,
                pull_from: vec![]
            }
        );
    }

    #[test]
    fn a_node_whose_peers_are_unreachable_waits() {
        let members = [member("n2", false, true, "d1")];
        let plan = view("n1", false, true, &members).plan();
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn a_joining_node_pulls_and_never_creates() {
        let members = [
            member("n2", true, true, "d1"),
            member("n3", true, false, ""),
        ];
        let plan = view("n1", false, true, &members).plan();
        assert!(!plan.bootstrap, "n1 is smallest but keys exist");
        assert!(!plan.lead);
        assert_eq!(plan.pull_from, ["n2"]);
    }

    #[test]
    fn a_cold_cluster_is_started_by_its_smallest_member_after_settling() {
        let members = [member("n2", true, false, ""), member("n3", true, false, "")];
        assert!(view("n1", false, true, &members).plan().bootstrap);
        let early = View {
            uptime: Duration::from_secs(1),
            ..view("n1", false, true, &members)
        };
        assert!(!early.plan().bootstrap);
        let members = [member("n1", true, false, ""), member("n3", true, false, "")];
        assert!(!view("n2", false, true, &members).plan().bootstrap);
    }

    #[test]
    fn the_leader_is_the_smallest_live_node_with_keys() {
        let members = [
            member("n1", true, false, ""),
            member("n3", true, true, "d1"),
        ];
        let v = view("n2", true, true, &members);
        assert_eq!(v.leader(), Some("n2"));
        assert!(v.plan().lead);
        let members = [member("n1", true, true, "d1")];
        assert!(!view("n2", true, true, &members).plan().lead);
        // A dead smaller node does not lead.
        let members = [
            member("n1", false, true, "d1"),
            member("n3", true, true, "d1"),
        ];
        assert!(view("n2", true, true, &members).plan().lead);
    }

    #[test]
    fn an_isolated_node_keeps_its_keys_but_creates_none() {
        let members = [
            member("n2", false, true, "d1"),
            member("n3", false, true, "d1"),
        ];
        let v = view("n1", true, true, &members);
        assert!(v.isolated());
        assert_eq!(v.leader(), Some("n1"));
        assert_eq!(
            v.plan(),
            Plan::default(),
            "no rotation, no bootstrap, nobody to ask"
        );
        // One peer back: a cluster again, and n1 leads it.
        let members = [
            member("n2", true, true, "d1"),
            member("n3", false, true, "d1"),
        ];
        assert!(view("n1", true, true, &members).plan().lead);
        // No peers configured: never isolated.
        assert!(view("n1", true, false, &[]).plan().lead);
    }

    #[test]
    fn a_node_whose_peers_were_forgotten_carries_on_alone() {
        let abandoned = View {
            abandoned: true,
            ..view("n1", false, true, &[])
        };
        assert!(
            abandoned.plan().bootstrap,
            "its keys ran out while isolated"
        );
        let abandoned = View {
            abandoned: true,
            ..view("n1", true, true, &[])
        };
        assert!(abandoned.plan().lead);
    }

    #[test]
    fn a_receiver_neither_blocks_nor_enables_a_cold_start() {
        let receiver = Member {
            receive_only: true,
            ..member("n0", true, false, "")
        };
        let members = [receiver.clone(), member("n2", true, false, "")];
        assert!(
            view("n1", false, true, &members).plan().bootstrap,
            "n0 is smallest but only receives"
        );
        let only_receiver = [receiver];
        assert!(
            !view("n1", false, true, &only_receiver).plan().bootstrap,
            "a receiver is not a live peer holding or creating keys"
        );
    }

    #[test]
    fn only_ready_members_with_a_different_set_are_asked() {
        let members = [
            member("n2", true, true, "d1"),
            member("n3", true, true, "d2"),
            member("n4", false, true, "d3"),
            member("n5", true, false, "d4"),
        ];
        assert_eq!(view("n1", true, true, &members).plan().pull_from, ["n3"]);
    }
}
