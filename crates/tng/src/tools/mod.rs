//! `tng tools`: operator tools that share the gateway's code paths.
//!
//! - [`ohttp`]: `dump` an egress's key configuration (and, with `--verify`, its attestation),
//!   `verify` a saved bundle, `decode` one into derived artifacts offline;
//! - [`rats_tls`]: `gen` an attested certificate, `dump` a live endpoint's, `verify` one;
//! - [`key_sync`]: a receive-only member of a `peer_shared` cluster that writes the cluster's
//!   keys to a directory for consumers that are not TNG.
//!
//! Flags follow upstream TNG 2.12's `tng tools`; `--json` (ours) prints a document for
//! scripts instead of the report for a person.

pub mod fs;
pub mod key_sync;
pub mod ohttp;
pub mod rats_tls;
pub mod time;

use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct ToolsArgs {
    #[command(subcommand)]
    pub command: ToolsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ToolsCommand {
    /// ohttp key-config tools
    Ohttp(ohttp::OhttpArgs),
    /// rats-tls certificate tools
    RatsTls(rats_tls::RatsTlsArgs),
    /// receive-only peer_shared cluster member writing the cluster's HPKE keys to a directory
    KeySync(key_sync::KeySyncArgs),
}

/// Runs a tool; errors are printed as one `error: …` line on stderr, exit status 1.
pub fn run(args: ToolsArgs, log: &tng_logging::LogArgs) -> ExitCode {
    // The ohttp and rats-tls tools print their report on stdout, where log lines would corrupt it (and
    // `--json` output for scripts): without a log file they log warnings to stderr only.
    // key-sync is a daemon and logs like `tng launch`.
    let log_errors = matches!(args.command, ToolsCommand::KeySync(_)) || log.log_file.is_some();
    let guard = match &args.command {
        ToolsCommand::KeySync(_) => tng_logging::init(log).map(Some),
        ToolsCommand::Ohttp(_) | ToolsCommand::RatsTls(_) if log.log_file.is_some() => {
            tng_logging::init(log).map(Some)
        }
        ToolsCommand::Ohttp(_) | ToolsCommand::RatsTls(_) => {
            init_stderr_logging();
            Ok(None)
        }
    };
    let _guard = match guard {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(1);
        }
    };
    let runtime = match crate::cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async move {
        match args.command {
            ToolsCommand::Ohttp(args) => ohttp::run(args).await,
            ToolsCommand::RatsTls(args) => rats_tls::run(args).await,
            ToolsCommand::KeySync(args) => key_sync::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Without a log file the ohttp tools log to stderr already: say it once.
            if log_errors {
                tracing::error!("{err:#}");
            }
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn init_stderr_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A JSON argument given inline (`{…}`) or as the path of a file holding it.
pub(crate) fn json_argument(value: &str, flag: &str) -> anyhow::Result<String> {
    if value.trim_start().starts_with('{') {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value).map_err(|e| {
        anyhow::anyhow!("{flag}: neither a JSON object nor a readable file ({value}: {e})")
    })
}

/// The payload of a compact JWS, decoded without verification.
pub(crate) fn jwt_payload(
    token: &str,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("not a JWT (expected three dot-separated parts)");
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the JWT payload is not base64url")?;
    serde_json::from_slice(&bytes).context("the JWT payload is not a JSON object")
}
