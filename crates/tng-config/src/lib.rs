//! The upstream-compatible TNG JSON configuration, parsed once into typed, validated structs.
//!
//! Strict everywhere: unknown keys, duplicate keys, wrong types and out-of-range numbers are
//! errors that name the field path. Keys that upstream accepts are still accepted; features
//! this implementation does not serve are refused with "not supported".
#![forbid(unsafe_code)]

mod client_addr;
mod control;
mod cors;
mod egress;
mod error;
mod exporter;
mod filter;
mod hook;
mod ingress;
mod json;
mod key;
mod limits;
mod mapping;
mod metric;
mod mode;
mod netfilter;
mod ohttp;
mod ra;
mod rats_tls;
mod top;
mod trace;
mod udp;

pub use client_addr::{IpPrefix, ProxyProtocol, TrustIngressClientIp};
pub use control::{ControlInterface, Endpoint};
pub use cors::Cors;
pub use egress::{Egress, EgressMode, ServerHeader};
pub use error::ConfigError;
pub use exporter::{OtlpExporter, OtlpProtocol};
pub use filter::{EndpointFilter, HostMatcher};
pub use hook::{EgressHook, HookCaptureDst, HookListen, IngressHook};
pub use ingress::{HttpProxy, Ingress, IngressMode, Socks5, Socks5Auth};
pub use key::{KeySource, PeerShared, DEFAULT_ROTATION_INTERVAL};
pub use limits::{Limits, DEFAULT_MAX_CHUNK_BYTES};
pub use mapping::MappingRule;
pub use metric::{FalconExporter, MetricConfig, MetricExporter, DEFAULT_METRIC_STEP};
pub use netfilter::{CaptureDst, EgressNetfilter, IngressNetfilter, DEFAULT_SO_MARK};
pub use ohttp::{
    EgressOhttp, HeaderList, HeaderPassthrough, IngressOhttp, PathDefault, PathRewrite, ServerTls,
};
pub use ra::{
    parse_attest_json, parse_verify_json, AaProvider, Attest, Model, Ra, Verify,
    DEFAULT_REFRESH_INTERVAL,
};
pub use rats_tls::RatsTls;
pub use top::{parse, Config};
pub use trace::{TraceConfig, TraceExporter};
pub use udp::{
    MappingUdp, NetfilterUdp, Quic, DEFAULT_QUIC_IDLE_TIMEOUT, DEFAULT_UDP_IDLE_TIMEOUT,
};
