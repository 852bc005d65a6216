//! Flags plus environment, resolved into what logging will do.
//!
//! Precedence follows upstream: a non-empty environment variable wins over its flag; an empty
//! one counts as unset. Unlike upstream, an invalid value is an error naming the variable, not
//! a warning followed by a default: a typo in `TNG_LOG_MAX_SIZE` must not silently become 64MB.

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

use crate::args::{
    parse_size, LogArgs, LogFormat, RateLimit, RateLimitSpec, DEFAULT_MAX_BACKUPS,
    DEFAULT_MAX_SIZE, DEFAULT_RATE_LIMIT,
};
use crate::error::LogError;

pub const ENV_FORMAT: &str = "TNG_LOG_FORMAT";
pub const ENV_ERROR_FILE: &str = "TNG_LOG_ERROR_FILE";
pub const ENV_ROLLING: &str = "TNG_LOG_ROLLING";
pub const ENV_MAX_SIZE: &str = "TNG_LOG_MAX_SIZE";
pub const ENV_MAX_BACKUPS: &str = "TNG_LOG_MAX_BACKUPS";
pub const ENV_RATE_LIMIT: &str = "TNG_LOG_RATE_LIMIT";
pub const ENV_FILTER: &str = "RUST_LOG";

/// Level filter when `RUST_LOG` is unset. The gossip library warns on every failed round with
/// an unreachable peer (several lines a second per peer); the cluster node logs membership
/// changes itself.
pub const DEFAULT_FILTER: &str = "info,chitchat=error";

/// A log file and where its path came from (a flag or an environment variable), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: PathBuf,
    pub origin: &'static str,
}

/// Size rolling of every log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    pub max_size: u64,
    /// Always ≥ 1: upstream keeps one backup for `--log-max-backups 0`.
    pub max_backups: u32,
}

/// The resolved logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub format: LogFormat,
    /// `None`: stdout.
    pub file: Option<FileSpec>,
    pub error_file: Option<FileSpec>,
    pub rolling: Option<Rolling>,
    pub rate_limit: Option<RateLimit>,
    /// `EnvFilter` directives.
    pub filter: String,
    /// Emitted as WARN lines once logging runs.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Resolves `args` against the environment as read by `env`.
    pub fn resolve(
        args: &LogArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, LogError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let invalid = |var: &'static str| move |reason: String| LogError::Env { var, reason };
        let mut warnings = Vec::new();

        let format = match env(ENV_FORMAT) {
            Some(value) => LogFormat::parse(&value).map_err(invalid(ENV_FORMAT))?,
            None => args.log_format.unwrap_or_default(),
        };
        let file = args.log_file.clone().map(|path| FileSpec {
            path,
            origin: "--log-file",
        });
        let error_file = match env(ENV_ERROR_FILE) {
            Some(path) => Some(FileSpec {
                path: path.into(),
                origin: ENV_ERROR_FILE,
            }),
            None => args.log_error_file.clone().map(|path| FileSpec {
                path,
                origin: "--log-error-file",
            }),
        };
        let rolling_on = match env(ENV_ROLLING) {
            Some(value) => parse_bool(&value).map_err(invalid(ENV_ROLLING))?,
            None => args.log_rolling,
        };
        let (max_size, size_given) = match env(ENV_MAX_SIZE) {
            Some(value) => (parse_size(&value).map_err(invalid(ENV_MAX_SIZE))?, true),
            None => (
                args.log_max_size.unwrap_or(DEFAULT_MAX_SIZE),
                args.log_max_size.is_some(),
            ),
        };
        let (max_backups, backups_given) = match env(ENV_MAX_BACKUPS) {
            Some(value) => {
                let n = value.trim().parse::<u32>().map_err(|_| LogError::Env {
                    var: ENV_MAX_BACKUPS,
                    reason: format!("invalid count `{value}` (expected a non-negative integer)"),
                })?;
                (n, true)
            }
            None => (
                args.log_max_backups.unwrap_or(DEFAULT_MAX_BACKUPS),
                args.log_max_backups.is_some(),
            ),
        };
        let rate_limit = match env(ENV_RATE_LIMIT) {
            Some(value) => RateLimitSpec::parse(&value).map_err(invalid(ENV_RATE_LIMIT))?,
            None => args
                .log_rate_limit
                .unwrap_or(RateLimitSpec(Some(DEFAULT_RATE_LIMIT))),
        }
        .0;
        let filter = match env(ENV_FILTER) {
            Some(directives) => match EnvFilter::try_new(&directives) {
                Ok(_) => directives,
                Err(err) => {
                    warnings.push(format!(
                        "{ENV_FILTER}={directives:?} is not a valid filter ({err}); using {DEFAULT_FILTER:?}"
                    ));
                    DEFAULT_FILTER.to_string()
                }
            },
            None => DEFAULT_FILTER.to_string(),
        };

        let rolling = if !rolling_on {
            if size_given || backups_given {
                warnings.push(
                    "--log-max-size / --log-max-backups have no effect without --log-rolling"
                        .to_string(),
                );
            }
            None
        } else if file.is_none() && error_file.is_none() {
            warnings.push(
                "--log-rolling has no effect without a log file: stdout is not rotated".to_string(),
            );
            None
        } else {
            Some(Rolling {
                max_size,
                max_backups: max_backups.max(1),
            })
        };
        Ok(Settings {
            format,
            file,
            error_file,
            rolling,
            rate_limit,
            filter,
            warnings,
        })
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!(
            "invalid value `{value}` (expected true, 1, false or 0)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    fn resolve(argv: &[&str], env: &[(&str, &str)]) -> Result<Settings, LogError> {
        let cli = Cli::try_parse_from(std::iter::once("tng").chain(argv.iter().copied()))
            .expect("flags parse");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(&cli.log, &|name| env.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let s = resolve(&[], &[]).unwrap();
        assert_eq!(
            s,
            Settings {
                format: LogFormat::Text,
                file: None,
                error_file: None,
                rolling: None,
                rate_limit: Some(DEFAULT_RATE_LIMIT),
                filter: DEFAULT_FILTER.into(),
                warnings: vec![],
            }
        );
    }

    #[test]
    fn environment_wins_over_flags() {
        let s = resolve(
            &[
                "--log-format",
                "text",
                "--log-file",
                "a.log",
                "--log-error-file",
                "flag-e.log",
                "--log-rolling",
                "--log-max-size",
                "1MB",
                "--log-max-backups",
                "3",
                "--log-rate-limit",
                "5/1s",
            ],
            &[
                (ENV_FORMAT, "JSON"),
                (ENV_ERROR_FILE, "env-e.log"),
                (ENV_MAX_SIZE, "2KB"),
                (ENV_MAX_BACKUPS, "7"),
                (ENV_RATE_LIMIT, "off"),
                (ENV_FILTER, "debug"),
            ],
        )
        .unwrap();
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(
            s.error_file,
            Some(FileSpec {
                path: "env-e.log".into(),
                origin: ENV_ERROR_FILE
            })
        );
        assert_eq!(
            s.rolling,
            Some(Rolling {
                max_size: 2048,
                max_backups: 7
            })
        );
        assert_eq!(s.rate_limit, None);
        assert_eq!(s.filter, "debug");

        let off = resolve(&["--log-file", "a", "--log-rolling"], &[(ENV_ROLLING, "0")]).unwrap();
        assert_eq!(off.rolling, None);
        let on = resolve(&["--log-file", "a"], &[(ENV_ROLLING, "TRUE")]).unwrap();
        assert_eq!(
            on.rolling,
            Some(Rolling {
                max_size: DEFAULT_MAX_SIZE,
                max_backups: DEFAULT_MAX_BACKUPS
            })
        );
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let s = resolve(
            &["--log-format", "json", "--log-rate-limit", "3/2s"],
            &[(ENV_FORMAT, ""), (ENV_RATE_LIMIT, "")],
        )
        .unwrap();
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                burst: 3,
                interval: Duration::from_secs(2)
            })
        );
    }

    #[test]
    fn flags_are_global_and_case_insensitive() {
        #[derive(Parser)]
        struct WithSub {
            #[command(flatten)]
            log: LogArgs,
            #[command(subcommand)]
            command: Sub,
        }
        #[derive(clap::Subcommand)]
        enum Sub {
            Launch,
        }
        let cli = WithSub::try_parse_from(["tng", "launch", "--log-format", "JSON"]).unwrap();
        assert_eq!(cli.log.log_format, Some(LogFormat::Json));
        let Sub::Launch = cli.command;
        let err = WithSub::try_parse_from(["tng", "launch", "--log-max-size", "1.5MB"])
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with(
                "error: invalid value '1.5MB' for '--log-max-size <SIZE>': invalid size `1.5MB`"
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_environment_values_are_errors_naming_the_variable() {
        for (var, value, message) in [
            (
                ENV_FORMAT,
                "bogus",
                "TNG_LOG_FORMAT: unknown log format `bogus` (expected text or json)",
            ),
            (
                ENV_ROLLING,
                "yes",
                "TNG_LOG_ROLLING: invalid value `yes` (expected true, 1, false or 0)",
            ),
            (
                ENV_MAX_SIZE,
                "1.5MB",
                "TNG_LOG_MAX_SIZE: invalid size `1.5MB` (expected e.g. 64MB or 67108864)",
            ),
            (
                ENV_MAX_BACKUPS,
                "-1",
                "TNG_LOG_MAX_BACKUPS: invalid count `-1` (expected a non-negative integer)",
            ),
            (
                ENV_RATE_LIMIT,
                "fast",
                "TNG_LOG_RATE_LIMIT: invalid rate limit `fast` (expected e.g. 100/10s, or off)",
            ),
        ] {
            let err = resolve(&["--log-format", "json"], &[(var, value)]).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn warnings_for_settings_without_effect() {
        let s = resolve(&["--log-max-backups", "2"], &[]).unwrap();
        assert_eq!(
            s.warnings,
            ["--log-max-size / --log-max-backups have no effect without --log-rolling"]
        );
        let s = resolve(&["--log-rolling"], &[]).unwrap();
        assert_eq!(s.rolling, None);
        assert_eq!(
            s.warnings,
            ["--log-rolling has no effect without a log file: stdout is not rotated"]
        );
        let s = resolve(&[], &[(ENV_FILTER, "info,x=notalevel")]).unwrap();
        assert_eq!(s.filter, DEFAULT_FILTER);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].starts_with("RUST_LOG=\"info,x=notalevel\" is not a valid filter"));
        let s = resolve(
            &["--log-file", "a", "--log-rolling", "--log-max-backups", "0"],
            &[],
        )
        .unwrap();
        assert_eq!(s.rolling.unwrap().max_backups, 1);
    }
}
