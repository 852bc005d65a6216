//! `tng exec`: runs one command with the hook library preloaded, and the hook ingresses and
//! egresses of the configuration serving its connections.
//!
//! Order: validate (hook entries only) → allocate ports → find the library → check the
//! command can be hooked at all → start the gateway and wait until every listener is bound →
//! spawn the command with the library's environment → forward SIGTERM/SIGINT/SIGHUP/SIGQUIT
//! to it, keeping the tunnel up → when it exits, stop the gateway and exit with its status
//! (128+n when a signal n killed it).

pub mod binary;
pub mod log_collector;
pub mod plan;

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// How long the gateway may drain after the application exited.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Everything `tng exec` was asked to do.
pub struct ExecRequest {
    pub config_text: String,
    pub allow_unhooked: bool,
    pub command: Vec<OsString>,
}

/// The library's path: `$TNG_HOOK_LIB`, else next to the `tng` executable, else the system
/// location.
pub fn resolve_library() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("TNG_HOOK_LIB") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "Failed to resolve libtng_hook.so path: TNG_HOOK_LIB={} does not exist",
                path.display()
            ))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("libtng_hook.so")));
    let candidates = beside.into_iter().chain(std::iter::once(PathBuf::from(
        "/usr/lib/tng/libtng_hook.so",
    )));
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err("Failed to resolve libtng_hook.so path: set TNG_HOOK_LIB, or install it next to the tng executable or as /usr/lib/tng/libtng_hook.so".into())
}

/// Runs `tng exec`; the exit code is the application's.
pub fn main(log: &tng_logging::LogArgs, request: ExecRequest) -> ExitCode {
    let prepared = prepare(&request);
    let (config, library, program) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    let (runtime, telemetry, log_guard) = match crate::cli::start(log, &config) {
        Ok(started) => started,
        Err(code) => return code,
    };
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let child = Child {
        program,
        command: request.command,
        library,
        log_format: match log_guard.sink().format() {
            tng_logging::LogFormat::Json => "json",
            tng_logging::LogFormat::Text => "text",
        },
        collect_logs: log.log_file.is_some()
            || log.log_error_file.is_some()
            || std::env::var_os("TNG_LOG_ERROR_FILE").is_some(),
        error_socket: log.log_error_file.is_some()
            || std::env::var_os("TNG_LOG_ERROR_FILE").is_some(),
    };
    let code = runtime.block_on(supervise(config, telemetry, log_guard.sink(), child));
    // Connections the application left behind must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(200));
    drop(log_guard);
    code
}

type Prepared = (tng_config::Config, PathBuf, PathBuf);

fn prepare(request: &ExecRequest) -> Result<Prepared, String> {
    let mut config = tng_config::parse(&request.config_text)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    plan::check_exec(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    plan::allocate_ports(&mut config).map_err(|e| format!("invalid configuration: {e}"))?;
    crate::runtime::check_supported(&config).map_err(|e| format!("invalid configuration: {e}"))?;
    let library = resolve_library()?;
    let Some(command) = request.command.first() else {
        return Err("no command given after `--`".into());
    };
    let program = binary::resolve(command)?;
    if let Err(why) = binary::check_hookable(&program) {
        if !request.allow_unhooked {
            return Err(format!(
                "{why} (pass --allow-unhooked to run it anyway, unprotected)"
            ));
        }
        eprintln!("warning: {why}; running it anyway (--allow-unhooked)");
    }
    Ok((config, library, program))
}

struct Child {
    program: PathBuf,
    command: Vec<OsString>,
    library: PathBuf,
    log_format: &'static str,
    collect_logs: bool,
    error_socket: bool,
}

/// The environment variables `tng exec` sets (or clears) for the application.
const HOOK_ENV: [&str; 8] = [
    "LD_PRELOAD",
    "TNG_HOOK_INGRESS_MAPPINGS",
    "TNG_HOOK_EGRESS_MAPPINGS",
    "TNG_HOOK_LOG_FORMAT",
    "TNG_HOOK_LOG_SOCKET",
    "TNG_HOOK_LOG_ERROR_SOCKET",
    "TNG_HOOK_LOG_FILE",
    "TNG_HOOK_LOG_ERROR_FILE",
];

async fn supervise(
    config: tng_config::Config,
    telemetry: Arc<tng_telemetry::Telemetry>,
    sink: tng_logging::LogSink,
    child: Child,
) -> ExitCode {
    let (ingress_table, egress_table) = plan::hook_tables(&config);
    let mut log_socket = None;
    let mut collector = None;
    if child.collect_logs {
        let name = log_collector::socket_name();
        match log_collector::bind(&name) {
            Ok(socket) => {
                collector = Some(tokio::spawn(log_collector::collect(socket, sink)));
                log_socket = Some(name);
            }
            Err(err) => warn!("cannot start the hook log collector ({err}); the application's hook logs go to its stderr"),
        }
    }
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
    let mut engine = tokio::spawn(crate::runtime::serve(
        config,
        telemetry,
        Some(ready_tx),
        async move { Ok(stop_rx.await.unwrap_or("the supervisor stopped")) },
    ));
    if ready_rx.await.is_err() {
        let message = match (&mut engine).await {
            Ok(Err(err)) => format!("{err:#}"),
            Ok(Ok(())) => "the gateway stopped before it was ready".into(),
            Err(err) => format!("the gateway failed: {err}"),
        };
        error!("{message}");
        eprintln!("error: {message}");
        return ExitCode::from(1);
    }
    info!(mode = "exec", library = %child.library.display(), "tng started (mode: exec)");

    let mut command = tokio::process::Command::new(&child.program);
    command.arg0(&child.command[0]).args(&child.command[1..]);
    for name in HOOK_ENV {
        command.env_remove(name);
    }
    command
        .env("LD_PRELOAD", &child.library)
        .env("TNG_HOOK_INGRESS_MAPPINGS", &ingress_table)
        .env("TNG_HOOK_LOG_FORMAT", child.log_format);
    if let Some(table) = &egress_table {
        command.env("TNG_HOOK_EGRESS_MAPPINGS", table);
    }
    if let Some(name) = &log_socket {
        command.env("TNG_HOOK_LOG_SOCKET", name);
        if child.error_socket {
            command.env("TNG_HOOK_LOG_ERROR_SOCKET", name);
        }
    }
    let code = match command.spawn() {
        Ok(process) => wait_forwarding_signals(process, &child.program).await,
        Err(err) => {
            let message = format!("cannot run {}: {err}", child.program.display());
            error!("{message}");
            eprintln!("error: {message}");
            ExitCode::from(127)
        }
    };
    let _ = stop_tx.send("the application exited");
    match tokio::time::timeout(STOP_GRACE, engine).await {
        Ok(Ok(Err(err))) => warn!("gateway stopped with an error: {err:#}"),
        Ok(_) => {}
        Err(_) => warn!("gateway connections still open {STOP_GRACE:?} after the application exited; closing them"),
    }
    if let Some(collector) = collector {
        collector.abort();
    }
    code
}

/// Waits for the application, passing on the signals that ask a process to stop; the
/// gateway keeps serving it meanwhile.
async fn wait_forwarding_signals(mut process: tokio::process::Child, program: &Path) -> ExitCode {
    use nix::sys::signal::Signal;
    let pid = process.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
    info!(pid = ?process.id(), program = %program.display(), "application started");
    let kinds = [
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::quit(), Signal::SIGQUIT),
    ];
    let mut streams = Vec::new();
    for (kind, sig) in kinds {
        match signal(kind) {
            Ok(stream) => streams.push((stream, sig)),
            Err(err) => warn!("cannot watch {sig}: {err}"),
        }
    }
    let status = loop {
        let next_signal = futures_util::future::select_all(
            streams
                .iter_mut()
                .map(|(stream, sig)| Box::pin(async move { stream.recv().await.map(|_| *sig) })),
        );
        tokio::select! {
            status = process.wait() => break status,
            (received, _, _) = next_signal => {
                if let (Some(sig), Some(pid)) = (received, pid) {
                    info!("{sig} received: forwarded to the application (pid {pid}); the tunnel stays up until it exits");
                    if let Err(err) = nix::sys::signal::kill(pid, sig) {
                        warn!("cannot forward {sig} to the application: {err}");
                    }
                }
            }
        }
    };
    match status {
        Ok(status) => {
            let code = match (status.code(), status.signal()) {
                (Some(code), _) => code,
                (None, Some(sig)) => 128 + sig,
                (None, None) => 1,
            };
            info!("application exited ({status}); exit code {code}");
            ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
        }
        Err(err) => {
            error!("cannot wait for the application: {err}");
            ExitCode::from(1)
        }
    }
}
