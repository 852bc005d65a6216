//! Trusted Network Gateway: transparent ingress/egress proxies that carry an application's
//! traffic to a service in a TEE through an end-to-end encrypted, remotely attested tunnel.
//!
//! Map of the crate, in the order traffic flows:
//! - [`capture`]: where connections come from (mapping, netfilter, http_proxy, socks5, hook) and
//!   where they were going;
//! - [`transport`]: which tunnel carries them to the other side ([`transport::ohttp`],
//!   [`transport::rats_tls`]), one module per side;
//! - [`exit`]: where they leave in plaintext (the service behind the egress, or a destination
//!   the ingress does not tunnel).
//!
//! Around them:
//! - [`runtime`] turns the typed configuration into running entries (capture → transport →
//!   exit) and the control interface, and owns start-up order, readiness and shutdown;
//!   nothing below it imports it back;
//! - [`exec`] is `tng exec`: the hook modes' launcher (ports, the preloaded library's
//!   environment, the application's signals and exit status);
//! - [`cli`] parses the command line, sets up logging and runs the runtime;
//! - [`tools`] holds `tng tools` (OHTTP key-config inspection, cluster key sync);
//! - [`control`] serves `/livez`, `/readyz` and `/status/...`;
//! - [`attestation`] builds attesters and verifiers from the configuration;
//! - [`http`] and [`net`] hold the HTTP and socket plumbing every side shares.
#![forbid(unsafe_code)]

pub mod attestation;
pub mod capture;
pub mod cli;
pub mod control;
pub mod error;
pub mod exec;
pub mod exit;
pub mod http;
pub mod net;
pub mod runtime;
pub mod shutdown;
pub mod tools;
pub mod transport;
