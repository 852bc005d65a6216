//! `tng-devkit`: applications for testing TNG without real services or TEE hardware.
//! Not part of the product: nothing in `tng` depends on it.

#![forbid(unsafe_code)]

mod aa;
mod attestation_service;
mod backend;
mod http_server;
mod udp_load;

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
    /// A UDP echo service (for the UDP benchmark).
    UdpEcho {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// A closed-loop UDP load generator: prints `{"echoed": N, "seconds": S}`.
    UdpLoad {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        size: usize,
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
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
    // The UDP tools are plain blocking loops: no async runtime.
    let result = match &cli.command {
        Command::UdpEcho { listen } => Some(udp_load::echo(*listen)),
        Command::UdpLoad {
            target,
            size,
            window,
            duration,
        } => Some(udp_load::load(
            *target,
            *size,
            *window,
            std::time::Duration::from_secs_f64(duration.max(0.1)),
        )),
        _ => None,
    };
    if let Some(result) = result {
        return exit(result);
    }
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
        Command::UdpEcho { .. } | Command::UdpLoad { .. } => unreachable!("run above"),
    };
    exit(result)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
