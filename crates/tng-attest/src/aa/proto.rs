//! Generated (build.rs, pure-Rust parser) bindings of `proto/attestation-agent.proto`: the
//! messages, the async client and the async server trait of
//! `attestation_agent.AttestationAgentService`. Public so that a test Attestation Agent can
//! serve exactly the API the product calls.

#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_mut,
    unused_results
)]
#[rustfmt::skip]
pub mod attestation_agent {
    include!(concat!(env!("OUT_DIR"), "/attestation_agent.rs"));
}

#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results
)]
#[rustfmt::skip]
pub mod attestation_agent_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/attestation_agent_ttrpc.rs"));
}

pub use attestation_agent::{
    GetAdditionalEvidenceRequest, GetEvidenceRequest, GetEvidenceResponse, GetTeeTypeRequest,
    GetTeeTypeResponse,
};
pub use attestation_agent_ttrpc::{
    create_attestation_agent_service, AttestationAgentService, AttestationAgentServiceClient,
};

/// The ttrpc service name.
pub const SERVICE: &str = "attestation_agent.AttestationAgentService";
