//! Trusted Network Gateway: transparent ingress/egress proxies that carry HTTP through an
//! end-to-end encrypted OHTTP tunnel.
//!
//! Map of the crate:
//! - [`cli`] parses the command line, sets up logging and runs the [`runtime`].
//! - [`runtime`] turns the typed configuration into running ingress/egress instances and the
//!   control interface, and owns start-up order, readiness and graceful shutdown.
//! - [`capture`] turns a mode (mapping, netfilter) into listeners whose connections know their
//!   original destination, and owns the netfilter rules that feed them.
//! - [`ingress`] is the OHTTP client side, [`egress`] the OHTTP gateway side.
//! - [`tunnel`] moves OHTTP-sealed BHTTP messages through hyper bodies (both sides).
//! - [`http`] holds the HTTP plumbing both sides share (servers, clients, bodies, errors).
//! - [`control`] serves `/livez`, `/readyz` and `/status/...`.
#![forbid(unsafe_code)]

pub mod attestation;
pub mod capture;
pub mod cli;
pub mod control;
pub mod egress;
pub mod error;
pub mod http;
pub mod ingress;
pub mod proxy;
pub mod runtime;
pub mod shutdown;
pub mod tunnel;
