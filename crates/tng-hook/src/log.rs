//! Log lines of the library, formatted like the engine's own (text or JSON), sent as one
//! datagram each to the collector of `tng exec` (route byte `0x01` info, `0x02` error), or
//! written to stderr when there is no collector.

use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Info,
    Error,
}

#[derive(Debug)]
pub struct Logger {
    json: bool,
    /// Abstract socket names (without the leading NUL) for info and error lines.
    info_socket: Option<String>,
    error_socket: Option<String>,
}

impl Logger {
    pub fn from_env() -> Logger {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let info_socket = var("TNG_HOOK_LOG_SOCKET");
        Logger {
            json: var("TNG_HOOK_LOG_FORMAT").as_deref() == Some("json"),
            error_socket: var("TNG_HOOK_LOG_ERROR_SOCKET").or_else(|| info_socket.clone()),
            info_socket,
        }
    }

    pub fn log(&self, level: Level, message: &str) {
        let line = format_line(self.json, level, message, SystemTime::now());
        let (socket, route) = match level {
            Level::Info => (&self.info_socket, 1u8),
            Level::Error => (&self.error_socket, 2u8),
        };
        if let Some(name) = socket {
            let mut datagram = Vec::with_capacity(line.len() + 1);
            datagram.push(route);
            datagram.extend_from_slice(line.as_bytes());
            if send(name, &datagram).is_ok() {
                return;
            }
        }
        let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    }
}

fn send(name: &str, datagram: &[u8]) -> std::io::Result<()> {
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(datagram, &addr)?;
    Ok(())
}

/// `2026-12-03T07:41:38.517791Z  INFO tng_hook: message pid=N`, or the JSON object form.
pub fn format_line(json: bool, level: Level, message: &str, now: SystemTime) -> String {
    let timestamp = rfc3339(now);
    let pid = std::process::id();
    let level_name = match level {
        Level::Info => "INFO",
        Level::Error => "ERROR",
    };
    if json {
        serde_json::json!({
            "timestamp": timestamp,
            "level": level_name,
            "fields": {"message": message, "pid": pid},
            "target": "tng_hook",
        })
        .to_string()
    } else {
        format!("{timestamp} {level_name:>5} tng_hook: {message} pid={pid}")
    }
}

fn rfc3339(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_283_698_517_791);
        assert_eq!(rfc3339(t), "2026-12-03T07:41:38.517791Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn line_formats() {
        let t = UNIX_EPOCH;
        let text = format_line(false, Level::Info, "hello", t);
        assert!(
            text.starts_with("1970-01-01T00:00:00.000000Z  INFO tng_hook: hello pid="),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&format_line(true, Level::Error, "bad", t)).unwrap();
        assert_eq!(json["level"], "ERROR");
        assert_eq!(json["fields"]["message"], "bad");
        assert_eq!(json["target"], "tng_hook");
    }
}
