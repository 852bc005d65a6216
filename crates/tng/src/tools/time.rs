//! Times as a person reads them: absolute UTC and relative to now, with explicit units.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-12-03 14:22:30 UTC`.
pub fn utc(unix_secs: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix_secs);
    let text = humantime::format_rfc3339_seconds(t).to_string();
    // RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` → `YYYY-MM-DD HH:MM:SS UTC`.
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `in 4m 59s`, `3s ago`, `now`.
pub fn relative(unix_secs: u64, now: SystemTime) -> String {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match unix_secs.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", span(unix_secs - now)),
        std::cmp::Ordering::Less => format!("{} ago", span(now - unix_secs)),
        std::cmp::Ordering::Equal => "now".to_owned(),
    }
}

/// Seconds from now to `unix_secs` (negative: in the past).
pub fn seconds_from_now(unix_secs: u64, now: SystemTime) -> i64 {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(unix_secs).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(i64::MAX)
}

/// `1d 2h 3m 4s`, leading zero units omitted, always at least seconds.
pub fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if d > 0 || h > 0 {
        parts.push(format!("{h}h"));
    }
    if d > 0 || h > 0 || m > 0 {
        parts.push(format!("{m}m"));
    }
    parts.push(format!("{s}s"));
    parts.join(" ")
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(1_796_308_348), "2026-12-03 14:32:28 UTC");
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(relative(1299, now), "in 4m 59s");
        assert_eq!(relative(997, now), "3s ago");
        assert_eq!(relative(1000, now), "now");
        assert_eq!(span(90_061), "1d 1h 1m 1s");
        assert_eq!(span(3600), "1h 0m 0s");
        assert_eq!(seconds_from_now(990, now), -10);
    }
}
