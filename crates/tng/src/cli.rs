//! Command line: `tng [--log-file FILE] launch (--config-file FILE | --config-content JSON)`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "tng", version, about = "Trusted Network Gateway")]
struct Cli {
    /// Append logs to this file instead of writing them to stdout.
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway described by a configuration.
    Launch(ConfigSource),
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct ConfigSource {
    /// Path of a JSON configuration file.
    #[arg(short = 'c', long)]
    config_file: Option<PathBuf>,
    /// The JSON configuration itself.
    #[arg(long)]
    config_content: Option<String>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Configuration problems are reported before logging or any socket exists, so the
    // operator sees exactly one clear line and nothing has been touched.
    let config = match load_config(&cli.command) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    if let Err(err) = init_logging(cli.log_file.as_deref()) {
        eprintln!("error: {err:#}");
        return ExitCode::from(1);
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
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
    match runtime.block_on(crate::runtime::run(config)) {
        Ok(()) => {
            tracing::info!("exited gracefully");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(command: &Command) -> Result<tng_config::Config, String> {
    let Command::Launch(source) = command;
    let text = match (&source.config_file, &source.config_content) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?,
        (None, Some(text)) => text.clone(),
        // clap's argument group already enforces exactly one source.
        _ => return Err("exactly one of --config-file or --config-content is required".into()),
    };
    let config = tng_config::parse(&text).map_err(|e| format!("invalid configuration: {e}"))?;
    crate::runtime::check_supported(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(config)
}

fn init_logging(log_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    // The gossip library warns on every failed round with an unreachable peer (several lines a
    // second per peer); the cluster node logs membership changes itself.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,chitchat=error"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        // Colours only for a human at a terminal, never into files or pipes.
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
    }
    Ok(())
}
