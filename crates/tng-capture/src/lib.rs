//! Transparent capture of TCP connections and UDP datagrams with netfilter.
//!
//! - [`rules`] renders the rule sets (pure text, unit-tested against the exact upstream layout).
//! - [`iptables`] installs and removes them atomically through `iptables-restore`.
//! - [`lock`] keeps two gateways in one network namespace from fighting over rules.
//! - [`socket`] reads original destinations and marks sockets.
//! - [`udp_rules`] and [`udp_socket`]: the same for `netfilter_udp` (TPROXY on both sides,
//!   original destinations from ancillary data, replies sent from the original destination).
#![forbid(unsafe_code)]

pub mod iptables;
pub mod lock;
pub mod rules;
pub mod socket;
pub mod udp_rules;
pub mod udp_socket;
