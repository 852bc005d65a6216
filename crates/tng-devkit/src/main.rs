//! `tng-devkit`: applications for testing TNG without real services or TEE hardware.
//! Not part of the product: nothing in `tng` depends on it.

#![forbid(unsafe_code)]

mod aa;
mod attestation_service;
mod backend;
mod http_server;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tng-devkit", version, about = "Test applications for TNG")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// An HTTP/1.1 + h2c test backend (echo, byte patterns, sink, SSE, status, slow, headers).
    Backend {
        /// Address to listen on; port 0 picks a free port (the ready line shows the real one).
        #[arg(long)]
        listen: SocketAddr,
    },
    /// A sample-TEE Attestation Agent (ttrpc over a unix socket).
    Aa(aa::Args),
    /// A sample RESTful Attestation Service (challenge, attestation, certificate, policy).
    As(attestation_service::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Backend { listen } => runtime.block_on(backend::run(listen)),
        Command::Aa(args) => runtime.block_on(aa::run(args)),
        Command::As(args) => runtime.block_on(attestation_service::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
