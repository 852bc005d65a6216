//! Cluster membership and failure detection on chitchat (scuttlebutt gossip over UDP with a
//! phi-accrual failure detector). Each node publishes two public facts — whether it holds an
//! Active key, and a digest of its key set — never key material.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chitchat::transport::UdpTransport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};

use crate::plan::Member;

/// Gossip round period. Short, so a new key's digest reaches every node well within the
/// Pending lead of even a 5 s rotation interval.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// Nodes of other clusters (or other programs) on the same port are ignored by chitchat.
const CLUSTER_ID: &str = "tng-ohttp-peer-shared";
const READY_KEY: &str = "ready";
const DIGEST_KEY: &str = "keys_digest";
const ADVERTISED_KEY: &str = "advertised";
/// `"receiver"` for a receive-only member (`tng tools key-sync`), absent otherwise.
const ROLE_KEY: &str = "role";
const RECEIVER_ROLE: &str = "receiver";

pub struct Membership {
    handle: ChitchatHandle,
    self_id: ChitchatId,
}

impl Membership {
    /// Binds the gossip socket on `listen` and starts gossiping with `seeds`.
    pub async fn start(
        listen: SocketAddr,
        advertise: SocketAddr,
        seeds: Vec<String>,
        receive_only: bool,
    ) -> anyhow::Result<Self> {
        // A restarted node is a new generation of the same id, so peers replace its old state.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let self_id = ChitchatId::new(advertise.to_string(), generation, advertise);
        let config = ChitchatConfig {
            chitchat_id: self_id.clone(),
            cluster_id: CLUSTER_ID.to_owned(),
            gossip_interval: GOSSIP_INTERVAL,
            listen_addr: listen,
            seed_nodes: seeds,
            failure_detector_config: FailureDetectorConfig {
                initial_interval: GOSSIP_INTERVAL,
                // Dead generations are forgotten after a minute rather than chitchat's day.
                dead_node_grace_period: Duration::from_secs(60),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let mut initial = vec![
            (READY_KEY.to_owned(), "0".to_owned()),
            (DIGEST_KEY.to_owned(), String::new()),
            (ADVERTISED_KEY.to_owned(), String::new()),
        ];
        if receive_only {
            initial.push((ROLE_KEY.to_owned(), RECEIVER_ROLE.to_owned()));
        }
        let handle = spawn_chitchat(config, initial, &UdpTransport)
            .await
            .with_context(|| format!("cannot start gossip on udp {listen}"))?;
        Ok(Self { handle, self_id })
    }

    pub fn node_id(&self) -> &str {
        &self.self_id.node_id
    }

    /// Publishes this node's public facts: whether it holds an Active key, the digest of its
    /// key set, and the public key it advertises (hex).
    pub async fn publish(&self, ready: bool, digest: &str, advertised: &str) {
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        let state = chitchat.self_node_state();
        // chitchat bumps a version on every set, so only changes are written.
        let ready = if ready { "1" } else { "0" };
        for (key, value) in [
            (READY_KEY, ready),
            (DIGEST_KEY, digest),
            (ADVERTISED_KEY, advertised),
        ] {
            if state.get(key) != Some(value) {
                state.set(key, value);
            }
        }
    }

    /// Every other node gossip knows of, newest generation per node id.
    pub async fn members(&self) -> Vec<Member> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        let live: std::collections::HashSet<&ChitchatId> = chitchat.live_nodes().collect();
        let mut members: std::collections::BTreeMap<&str, (u64, Member)> = Default::default();
        for (id, state) in chitchat.node_states() {
            if id.node_id == self.self_id.node_id {
                continue;
            }
            let member = Member {
                node_id: id.node_id.to_string(),
                alive: live.contains(id),
                ready: state.get(READY_KEY) == Some("1"),
                keys_digest: state.get(DIGEST_KEY).unwrap_or_default().to_owned(),
                advertised: state.get(ADVERTISED_KEY).unwrap_or_default().to_owned(),
                receive_only: state.get(ROLE_KEY) == Some(RECEIVER_ROLE),
            };
            match members.get(&*id.node_id) {
                Some((generation, _)) if *generation > id.generation_id => {}
                _ => {
                    members.insert(&id.node_id, (id.generation_id, member));
                }
            }
        }
        members.into_values().map(|(_, member)| member).collect()
    }

    /// Gossips with a peer added at run time (a changed peers file).
    pub fn introduce(&self, peer: SocketAddr) {
        if let Err(err) = self.handle.gossip(peer) {
            tracing::warn!(%peer, "cannot gossip with new peer: {err}");
        }
    }

    pub async fn stop(self) {
        let _ = self.handle.shutdown().await;
    }
}
