//! Command line: `tng [logging flags] launch (--config-file FILE | --config-content JSON)`,
//! `tng [logging flags] exec (-c FILE | --config-content JSON) -- COMMAND [ARGS...]`;
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
    /// Run COMMAND with the hook library preloaded, its connections carried by the
    /// configuration's hook ingresses and egresses.
    Exec(ExecArgs),
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

#[derive(Args, Debug)]
struct ExecArgs {
    #[command(flatten)]
    source: ConfigSource,
    /// Run COMMAND even when it is a static or Go binary the hook library cannot see into
    /// (its connections then bypass the tunnel).
    #[arg(long)]
    allow_unhooked: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1.., value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cli = match cli.command {
        Command::Tools(args) => return crate::tools::run(args, &cli.log),
        Command::Exec(args) => {
            let config_text = match read_source(&args.source) {
                Ok(text) => text,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(1);
                }
            };
            let request = crate::exec::ExecRequest {
                config_text,
                allow_unhooked: args.allow_unhooked,
                command: args.command,
            };
            return crate::exec::main(&cli.log, request);
        }
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
    // Kept to the end of `main`: dropping `_log_guard` flushes the log files.
    let (runtime, telemetry, _log_guard) = match start(&cli.log, &config) {
        Ok(started) => started,
        Err(code) => return code,
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

/// What `tng launch` and `tng exec` set up before serving: the runtime, the telemetry the
/// config asks for, and logging with its trace layer. Errors are printed; the exit code is
/// returned.
pub(crate) fn start(
    log: &tng_logging::LogArgs,
    config: &tng_config::Config,
) -> Result<
    (
        tokio::runtime::Runtime,
        std::sync::Arc<tng_telemetry::Telemetry>,
        tng_logging::LogGuard,
    ),
    ExitCode,
> {
    let runtime = runtime()?;
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
            return Err(ExitCode::from(1));
        }
    };
    match init_logging(log, &telemetry) {
        Ok(guard) => Ok((runtime, telemetry, guard)),
        Err(err) => {
            eprintln!("error: {err:#}");
            Err(ExitCode::from(1))
        }
    }
}

/// The log files and formats of `args`, plus the spans exported as traces when `trace`
/// asks for them.
pub(crate) fn init_logging(
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
    let text = read_source(source)?;
    let config = tng_config::parse(&text).map_err(|e| format!("invalid configuration: {e}"))?;
    crate::exec::plan::check_launch(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    crate::runtime::check_supported(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(config)
}

fn read_source(source: &ConfigSource) -> Result<String, String> {
    Ok(match (&source.config_file, &source.config_content) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?,
        (None, Some(text)) => text.clone(),
        // clap's argument group already enforces exactly one source.
        _ => return Err("exactly one of --config-file or --config-content is required".into()),
    })
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
