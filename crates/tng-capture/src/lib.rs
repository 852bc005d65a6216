//! Transparent capture of TCP connections with netfilter.
//!
//! - [`rules`] renders the rule sets (pure text, unit-tested against the exact upstream layout).
//! - [`iptables`] installs and removes them atomically through `iptables-restore`.
//! - [`lock`] keeps two gateways in one network namespace from fighting over rules.
//! - [`socket`] reads original destinations and marks sockets.
#![forbid(unsafe_code)]

pub mod iptables;
pub mod lock;
pub mod rules;
pub mod socket;
