//! HTTP plumbing shared by the ingress, the egress and the control interface. Nothing here
//! knows about OHTTP: it accepts connections, serves hyper services, opens pooled client
//! connections and moves bodies.

pub mod body;
pub mod body_timer;
pub mod client;
pub mod conn_timers;
pub mod headers;
pub mod observed;
pub mod rules;
pub mod server;

/// The `server` header of every answer the gateway makes itself. Without the version, which
/// would tell a prober which known bugs to try (an egress can be configured to send it:
/// `add_egress[].server_header`).
pub const SERVER_HEADER: &str = "tng";
pub const SERVER_HEADER_WITH_VERSION: &str = concat!("tng/", env!("CARGO_PKG_VERSION"));
