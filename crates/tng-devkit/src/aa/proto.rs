//! Generated Attestation Agent messages (`attestation_agent`) and ttrpc bindings
//! (`attestation_agent_ttrpc`), built from `proto/attestation-agent.proto` by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/aa_proto_mod.rs"));
