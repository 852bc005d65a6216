//! The OHTTP transport: each HTTP request is sealed on its own to the egress's current HPKE
//! key (chunked OHTTP over Binary HTTP), and POSTed to the original destination through
//! whatever L7 gateways are in between.
//!
//! - [`ingress`]: the OHTTP client in front of the application;
//! - [`egress`]: the OHTTP gateway in front of the service;
//! - [`body`]: the streaming glue between hyper bodies and the sealed chunks, both sides.

pub mod body;
pub mod egress;
pub mod ingress;
