//! The logging flags, valid on every subcommand, and the grammar of their values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Default size at which a log file is rotated (64 MiB, as upstream's `64MB`).
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_MAX_BACKUPS: u32 = 5;
/// Default rate limit: identical WARN/ERROR lines from one callsite beyond 100 per 10 s are
/// counted only.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    burst: 100,
    interval: Duration::from_secs(10),
};

/// The global logging flags. Flatten into the top-level clap struct; each flag is `global`, so
/// it is accepted before or after the subcommand. Environment variables win over the flags
/// (see [`crate::Settings::resolve`]).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Global options")]
pub struct LogArgs {
    /// Log line format: text | json. `TNG_LOG_FORMAT` wins over this flag
    #[arg(
        long,
        global = true,
        value_name = "FORMAT",
        value_enum,
        ignore_case = true
    )]
    pub log_format: Option<LogFormat>,

    /// Append logs to FILE (created if missing) instead of writing them to stdout
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Write ERROR lines to FILE, and only there; every other line goes to --log-file or
    /// stdout. `TNG_LOG_ERROR_FILE` wins over this flag
    #[arg(long, global = true, value_name = "FILE")]
    pub log_error_file: Option<PathBuf>,

    /// Rotate log files by size, Debian-style: FILE.1 (newest) ... FILE.N.
    /// `TNG_LOG_ROLLING` (true, 1, false, 0) wins over this flag
    #[arg(long, global = true)]
    pub log_rolling: bool,

    /// Size at which a log file is rotated: a byte count or N with B, KB, MB, GB
    /// (1KB = 1024 bytes) [default: 64MB]. `TNG_LOG_MAX_SIZE` wins over this flag
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size_arg)]
    pub log_max_size: Option<u64>,

    /// Number of rotated files kept [default: 5]. `TNG_LOG_MAX_BACKUPS` wins over this flag
    #[arg(long, global = true, value_name = "N")]
    pub log_max_backups: Option<u32>,

    /// Identical WARN/ERROR lines from one place in the code beyond N per INTERVAL are counted
    /// and summarised instead of written; `off` writes every line [default: 100/10s].
    /// `TNG_LOG_RATE_LIMIT` wins over this flag
    #[arg(long, global = true, value_name = "N/INTERVAL", value_parser = parse_rate_arg)]
    pub log_rate_limit: Option<RateLimitSpec>,
}

/// Line format of every log destination: `Text` is
/// `2026-12-03T07:41:38.517791Z  INFO span{field=value}: target: message field=value`,
/// `Json` one object per line with `timestamp`, `level`, `fields`, `target`, `span`, `spans`.
#[derive(ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`, case-insensitively.
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "unknown log format `{value}` (expected text or json)"
            )),
        }
    }
}

/// At most `burst` identical lines per callsite in each `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub interval: Duration,
}

/// A parsed `--log-rate-limit` value: `None` is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSpec(pub Option<RateLimit>);

impl RateLimitSpec {
    /// Parses `off` or `N/INTERVAL` (`100/10s`, `20/1m`; N ≥ 1, INTERVAL > 0).
    pub fn parse(value: &str) -> Result<RateLimitSpec, String> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("off") {
            return Ok(RateLimitSpec(None));
        }
        let invalid = || format!("invalid rate limit `{value}` (expected e.g. 100/10s, or off)");
        let (burst, interval) = value.split_once('/').ok_or_else(invalid)?;
        let burst: u32 = burst.trim().parse().map_err(|_| invalid())?;
        let interval = humantime::parse_duration(interval.trim()).map_err(|_| invalid())?;
        if burst == 0 || interval.is_zero() {
            return Err(invalid());
        }
        Ok(RateLimitSpec(Some(RateLimit { burst, interval })))
    }
}

/// Parses a size: optional surrounding spaces, a non-negative integer, an optional space and an
/// optional case-insensitive unit `B`, `KB`, `MB` or `GB` (binary multiples, as upstream).
/// Decimals, `K`/`M`/`G` alone, `KiB` and `TB` are refused, as upstream refuses them.
pub fn parse_size(value: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size `{value}` (expected e.g. 64MB or 67108864)");
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid());
    }
    let multiplier: u64 = match unit.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(invalid)
}

fn parse_size_arg(value: &str) -> Result<u64, String> {
    parse_size(value)
}

fn parse_rate_arg(value: &str) -> Result<RateLimitSpec, String> {
    RateLimitSpec::parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accepted_as_upstream_accepts_them() {
        for (text, bytes) in [
            ("67108864", 67_108_864),
            ("64MB", 64 << 20),
            ("64mb", 64 << 20),
            (" 1 GB ", 1 << 30),
            ("5KB", 5 << 10),
            ("1024B", 1024),
            ("0", 0),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn sizes_refused_as_upstream_refuses_them() {
        for text in [
            "1.5MB",
            "5k",
            "2G",
            "1TB",
            "1KiB",
            "abc",
            "",
            "MB",
            "-1",
            "99999999999GB",
        ] {
            assert_eq!(
                parse_size(text),
                Err(format!(
                    "invalid size `{text}` (expected e.g. 64MB or 67108864)"
                )),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rate_limits() {
        assert_eq!(RateLimitSpec::parse("off"), Ok(RateLimitSpec(None)));
        assert_eq!(
            RateLimitSpec::parse("20/1m"),
            Ok(RateLimitSpec(Some(RateLimit {
                burst: 20,
                interval: Duration::from_secs(60)
            })))
        );
        for bad in ["0/10s", "10/0s", "10", "x/1s", "10/abc"] {
            assert_eq!(
                RateLimitSpec::parse(bad),
                Err(format!(
                    "invalid rate limit `{bad}` (expected e.g. 100/10s, or off)"
                ))
            );
        }
    }

    #[test]
    fn formats_ignore_case() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("Text"), Ok(LogFormat::Text));
        assert_eq!(
            LogFormat::parse("bogus"),
            Err("unknown log format `bogus` (expected text or json)".into())
        );
    }
}
