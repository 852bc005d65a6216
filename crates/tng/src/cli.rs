//! Command line: `tng [logging flags] launch (--config-file FILE | --config-content JSON)`;
//! the logging flags (`--log-file`, `--log-format`, ...) are `tng_logging::LogArgs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tng", version, about = "Trusted Network Gateway")]
struct Cli {
    #[command(flatten)]
    log: tng_logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway described by a configuration.
    Launch(ConfigSource),
    /// Operator tools: inspect an egress's OHTTP key configuration, sync cluster keys.
    Tools(crate::tools::ToolsArgs),
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
    let cli = match cli.command {
        Command::Tools(args) => return crate::tools::run(args, &cli.log),
        command => Cli { command, ..cli },
    };
    // Configuration problems are reported before logging or any socket exists, so the
    // operator sees exactly one clear line and nothing has been touched.
    let config = match load_config(&cli.command) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    let runtime = match crate::cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // Exporters start tasks on the runtime, and the trace layer must be part of the
    // subscriber from the first line on.
    let telemetry = {
        let _runtime = runtime.enter();
        tng_telemetry::Telemetry::new(&config.metric, &config.trace, env!("CARGO_PKG_VERSION"))
    };
    let telemetry = match telemetry {
        Ok(telemetry) => std::sync::Arc::new(telemetry),
        Err(err) => {
            eprintln!("error: invalid configuration: {err}");
            return ExitCode::from(1);
        }
    };
    // Kept to the end of `main`: dropping it flushes the log files.
    let _log_guard = match init_logging(&cli.log, &telemetry) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(1);
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match runtime.block_on(crate::runtime::run(config, telemetry)) {
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

/// The log files and formats of `args`, plus the spans exported as traces when `trace`
/// asks for them.
fn init_logging(
    args: &tng_logging::LogArgs,
    telemetry: &tng_telemetry::Telemetry,
) -> anyhow::Result<tng_logging::LogGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let logging = tng_logging::build(args, &|name| std::env::var(name).ok())?;
    tracing_subscriber::registry()
        .with(logging.layer)
        .with(telemetry.layer())
        .try_init()
        .map_err(|err| anyhow::anyhow!("cannot install the log subscriber: {err}"))?;
    for warning in &logging.warnings {
        tracing::warn!(target: "tng::logging", "{warning}");
    }
    Ok(logging.guard)
}

fn load_config(command: &Command) -> Result<tng_config::Config, String> {
    let Command::Launch(source) = command else {
        return Err("not a launch command".into());
    };
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

/// The multi-threaded runtime every subcommand runs on; failing to start it is reported once.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::from(1)
        })
}
