//! `key.source: "peer_shared"`: egress nodes behind one load balancer share their OHTTP keys,
//! so a request encrypted to any node's advertised key can be decrypted by every node.
//!
//! - [`membership`]: who is in the cluster, on an existing gossip implementation (chitchat,
//!   scuttlebutt reconciliation + phi-accrual failure detection over UDP). Gossip carries
//!   only public facts: a node's id, whether it holds keys, a digest of its key set.
//! - [`channel`]: the only way keys move: TLS 1.3 between two nodes, then mutual remote
//!   attestation bound to that TLS session (its exporter secret is in the evidence's runtime
//!   data), then the key set, from the node that was asked to the node that asked.
//! - [`key_set`] and [`plan`]: the pure rules. One leader (the smallest live node id holding
//!   keys) creates every new key, one interval (at most 60 s) ahead as Pending; all nodes accept Pending,
//!   Active and Stale keys and advertise the same Active key; a new node receives keys and
//!   never creates them, unless it is alone by configuration or the cluster is cold.
//! - [`node`]: the driver tying them together.
#![forbid(unsafe_code)]

pub mod channel;
pub mod key_set;
pub mod membership;
pub mod node;
pub mod peers;
pub mod plan;

pub use node::{Node, NodeOptions};
