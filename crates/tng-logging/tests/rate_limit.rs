//! Floods of one WARN or ERROR line collapse into the burst plus one summary; other lines,
//! and INFO lines, are untouched.

mod common;

use common::*;
use tracing::{error, info, warn};

#[test]
fn a_flood_of_one_line_collapses_into_the_burst_and_one_summary() {
    let d = dir("flood");
    let (main, errors) = (d.join("a.log"), d.join("e.log"));
    let guard = run(
        &[
            "--log-format",
            "json",
            "--log-file",
            main.to_str().unwrap(),
            "--log-error-file",
            errors.to_str().unwrap(),
            "--log-rate-limit",
            "5/1h",
        ],
        &[],
        || {
            // Fields are not part of a line's identity: one refusal, many peers.
            for i in 0..1000u64 {
                warn!(peer = i, "replayed request refused");
            }
            // Different messages from one callsite are different lines.
            for i in 0..20 {
                warn!("distinct {i}");
            }
            for _ in 0..50 {
                error!("backend down");
            }
            // INFO lines are never limited: one message per request is what access logs are.
            for i in 0..300u64 {
                info!(request = i, "served");
            }
        },
    );
    let stats = guard.stats();
    drop(guard);
    assert_eq!(stats.main.written, 5 + 20 + 300 + 1);
    assert_eq!(stats.error.unwrap().written, 5 + 1);

    let lines = json_lines(&main);
    assert_eq!(lines.len(), 5 + 20 + 300 + 1, "{lines:#?}");
    for (i, line) in lines[..5].iter().enumerate() {
        assert_eq!(line["fields"]["message"], "replayed request refused");
        assert_eq!(line["fields"]["peer"], i as u64);
    }
    for (i, line) in lines[5..25].iter().enumerate() {
        assert_eq!(line["fields"]["message"], format!("distinct {i}"));
    }
    for (i, line) in lines[25..325].iter().enumerate() {
        assert_eq!(line["fields"]["message"], "served");
        assert_eq!(line["fields"]["request"], i as u64);
    }
    check_summary(&lines[325], "WARN", 995, "replayed request refused");

    let lines = json_lines(&errors);
    assert_eq!(lines.len(), 5 + 1, "{lines:#?}");
    assert!(lines[..5]
        .iter()
        .all(|l| l["fields"]["message"] == "backend down" && l["level"] == "ERROR"));
    check_summary(&lines[5], "ERROR", 45, "backend down");
}

fn check_summary(line: &serde_json::Value, level: &str, repeated: u64, message: &str) {
    assert_eq!(line["level"], level);
    assert_eq!(line["target"], "rate_limit");
    assert_eq!(line["fields"]["repeated"], repeated);
    let text = line["fields"]["message"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("repeated {repeated} more times in "))
            && text.ends_with(&format!(": {message}")),
        "{text}"
    );
    let callsite = line["fields"]["callsite"].as_str().unwrap();
    let (file, number) = callsite.rsplit_once(':').unwrap();
    assert_eq!(file, file!());
    number.parse::<u32>().unwrap();
}
