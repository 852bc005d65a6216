//! HTTP plumbing shared by the ingress, the egress and the control interface. Nothing here
//! knows about OHTTP: it accepts connections, serves hyper services, opens pooled client
//! connections and moves bodies.

pub mod body;
pub mod body_timer;
pub mod client;
pub mod conn_timers;
pub mod headers;
pub mod observed;
pub mod server;

/// The `server` header of every answer the gateway makes itself.
pub const SERVER_HEADER: &str = concat!("tng/", env!("CARGO_PKG_VERSION"));
