//! Generates the Attestation Agent ttrpc bindings with the pure-Rust codegen (no `protoc`).

fn main() {
    println!("cargo:rerun-if-changed=proto/attestation-agent.proto");
    ttrpc_codegen::Codegen::new()
        .input("proto/attestation-agent.proto")
        .include("proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .rust_protobuf_customize(ttrpc_codegen::ProtobufCustomize::default().gen_mod_rs(false))
        .run()
        .expect("ttrpc code generation for proto/attestation-agent.proto failed");
}
