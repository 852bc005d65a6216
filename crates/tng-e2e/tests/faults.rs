//! Faults survived, each with an exact outcome: the egress restarted under load (SIGKILL and
//! SIGTERM), the service behind the egress down, resetting, cut off or slow, the Attestation
//! Service and Agent gone and back, nginx reloaded and restarted between the gateways, a
//! pooled connection closed as a request crosses it, the egress key file replaced with
//! garbage, and SIGKILL of either gateway in netfilter mode.
//!
//! Figures (failed requests per fault, time to recover) are printed with a `[faults]` prefix
//! (`--nocapture`) and recorded in `bench/hardening.md`.

#[path = "attestation/stack.rs"]
#[allow(dead_code)]
mod stack;

#[path = "netns/mod.rs"]
mod netns;

#[path = "faults/common.rs"]
mod common;

#[path = "faults/attestation.rs"]
mod attestation;
#[path = "faults/backend.rs"]
mod backend;
#[path = "faults/closed_connection.rs"]
mod closed_connection;
#[path = "faults/key_file.rs"]
mod key_file;
#[path = "faults/netfilter.rs"]
mod netfilter;
#[path = "faults/nginx.rs"]
mod nginx;
#[path = "faults/restart.rs"]
mod restart;
