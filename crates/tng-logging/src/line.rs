//! Lines that do not come from a `tracing` event — loss reports, rate-limit summaries and
//! external lines — in the same shapes as the `tracing-subscriber` formatter writes events, so
//! a reader (or a JSON parser) cannot tell them apart.

use std::fmt::Write as _;
use std::time::SystemTime;

use tracing::Level;

use crate::args::LogFormat;

/// A field value of a line built here.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    U64(u64),
    Str(&'a str),
}

/// One complete line, newline included.
pub(crate) fn format_line(
    format: LogFormat,
    level: Level,
    target: &str,
    message: &str,
    fields: &[(&str, Value<'_>)],
) -> Vec<u8> {
    let timestamp = humantime::format_rfc3339_micros(SystemTime::now());
    let mut out = String::with_capacity(96 + message.len());
    match format {
        LogFormat::Text => {
            let _ = write!(out, "{timestamp} {:>5} {target}: {message}", level.as_str());
            for (name, value) in fields {
                match value {
                    Value::U64(n) => {
                        let _ = write!(out, " {name}={n}");
                    }
                    Value::Str(s) => {
                        let _ = write!(out, " {name}={s}");
                    }
                }
            }
        }
        LogFormat::Json => {
            let _ = write!(
                out,
                "{{\"timestamp\":\"{timestamp}\",\"level\":\"{}\",\"fields\":{{\"message\":{}",
                level.as_str(),
                json_string(message)
            );
            for (name, value) in fields {
                match value {
                    Value::U64(n) => {
                        let _ = write!(out, ",{}:{n}", json_string(name));
                    }
                    Value::Str(s) => {
                        let _ = write!(out, ",{}:{}", json_string(name), json_string(s));
                    }
                }
            }
            let _ = write!(out, "}},\"target\":{}}}", json_string(target));
        }
    }
    out.push('\n');
    out.into_bytes()
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_event_shape() {
        let line = format_line(
            LogFormat::Json,
            Level::WARN,
            "tng::logging",
            "a \"quoted\"\nmessage",
            &[("lost", Value::U64(3)), ("cause", Value::Str("full"))],
        );
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["fields", "level", "target", "timestamp"]);
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "tng::logging");
        assert_eq!(
            v["fields"],
            serde_json::json!({"message": "a \"quoted\"\nmessage", "lost": 3, "cause": "full"})
        );
        assert!(text.starts_with("{\"timestamp\":\""));
        humantime::parse_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
    }

    #[test]
    fn text_lines_have_the_event_shape() {
        let line = format_line(
            LogFormat::Text,
            Level::INFO,
            "hook",
            "hello",
            &[("n", Value::U64(1))],
        );
        let text = String::from_utf8(line).unwrap();
        let (timestamp, rest) = text.split_once(' ').unwrap();
        assert_eq!(timestamp.len(), "2026-12-03T07:41:38.517791Z".len());
        humantime::parse_rfc3339(timestamp).unwrap();
        assert_eq!(rest, " INFO hook: hello n=1\n");
    }
}
