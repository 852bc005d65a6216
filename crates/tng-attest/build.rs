//! Generates the Attestation Agent ttrpc bindings (messages, async client, async server trait)
//! with the pure-Rust protobuf parser: no `protoc` needed.
//!
//! The generated files carry inner attributes (`#![allow(..)]`, `//!`), which `include!` cannot
//! take and one of which (`allow(unsafe_code)`) conflicts with the crate's `forbid(unsafe_code)`;
//! they are stripped here and the wrapping module in `src/aa/proto.rs` re-applies the allows.

use std::path::Path;

const GENERATED: [&str; 2] = ["attestation_agent.rs", "attestation_agent_ttrpc.rs"];

fn main() -> std::io::Result<()> {
    let out_dir = std::env::var("OUT_DIR").map_err(std::io::Error::other)?;
    println!("cargo:rerun-if-changed=proto/attestation-agent.proto");
    println!("cargo:rerun-if-changed=build.rs");
    ttrpc_codegen::Codegen::new()
        .out_dir(&out_dir)
        .input("proto/attestation-agent.proto")
        .include("proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .rust_protobuf_customize(ttrpc_codegen::ProtobufCustomize::default().gen_mod_rs(false))
        .run()?;
    for name in GENERATED {
        let path = Path::new(&out_dir).join(name);
        let text = std::fs::read_to_string(&path)?;
        if text.contains("unsafe ") {
            return Err(std::io::Error::other(format!(
                "{name}: generated code uses `unsafe`, which this crate forbids"
            )));
        }
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                !line.starts_with("#!") && !line.starts_with("//!")
            })
            .collect();
        std::fs::write(&path, kept.join("\n"))?;
    }
    Ok(())
}
