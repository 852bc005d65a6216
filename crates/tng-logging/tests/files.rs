//! Destinations on real files: JSON shape, error-file routing, rolling, non-regular paths,
//! failing writes and start-up errors.

mod common;

use std::os::unix::fs::FileTypeExt;

use common::*;
use serde_json::json;
use tracing::{error, info, info_span, warn, Level};

#[test]
fn json_lines_parse_and_carry_the_span_fields() {
    let d = dir("json");
    let file = d.join("a.log");
    let path = file.to_str().unwrap();
    let guard = run(&["--log-format", "json", "--log-file", path], &[], || {
        let conn = info_span!("conn", listener = "ingress0", peer = "127.0.0.1:5000");
        let _conn = conn.enter();
        let request = info_span!("request", method = "GET", path = "/x");
        let _request = request.enter();
        info!(status = 200u64, ok = true, "request done");
    });
    drop(guard);
    let lines = json_lines(&file);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["fields", "level", "span", "spans", "target", "timestamp"]
    );
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "files");
    assert_eq!(
        line["fields"],
        json!({"message": "request done", "status": 200, "ok": true})
    );
    assert_eq!(
        line["span"],
        json!({"method": "GET", "path": "/x", "name": "request"})
    );
    assert_eq!(
        line["spans"],
        json!([
            {"listener": "ingress0", "peer": "127.0.0.1:5000", "name": "conn"},
            {"method": "GET", "path": "/x", "name": "request"}
        ])
    );
    humantime::parse_rfc3339(line["timestamp"].as_str().unwrap()).unwrap();
    // Upstream's key order: a scraper that reads the raw text sees the same prefix.
    assert!(lines::raw(&file).starts_with("{\"timestamp\":"));
}

#[test]
fn error_lines_go_only_to_the_error_file() {
    let d = dir("error-file");
    let (main, errors) = (d.join("a.log"), d.join("e.log"));
    let guard = run(
        &[
            "--log-file",
            main.to_str().unwrap(),
            "--log-error-file",
            errors.to_str().unwrap(),
        ],
        &[],
        || {
            info!("one");
            warn!("two");
            error!("three");
            info!("four");
            error!(code = 7u64, "five");
        },
    );
    let sink = guard.sink();
    sink.write_line(Level::ERROR, "hook", "six");
    sink.write_formatted(Level::INFO, b"an already formatted line");
    drop(guard);
    let tails = |path, n: usize| -> Vec<String> {
        lines(path)
            .iter()
            .map(|l| l.chars().skip(n).collect())
            .collect()
    };
    // After the timestamp (27 characters).
    let main_lines = lines(&main);
    assert_eq!(main_lines.len(), 4, "{main_lines:?}");
    assert_eq!(main_lines[3], "an already formatted line");
    assert_eq!(
        tails(&main, 27)[..3],
        [
            "  INFO files: one",
            "  WARN files: two",
            "  INFO files: four"
        ]
    );
    assert_eq!(
        tails(&errors, 27),
        [
            " ERROR files: three",
            " ERROR files: five code=7",
            " ERROR hook: six"
        ]
    );
}

#[test]
fn the_error_file_exists_from_the_start() {
    let d = dir("error-file-empty");
    let errors = d.join("e.log");
    let guard = run(
        &["--log-file", d.join("a.log").to_str().unwrap()],
        &[("TNG_LOG_ERROR_FILE", errors.to_str().unwrap())],
        || info!("nothing wrong"),
    );
    drop(guard);
    assert_eq!(std::fs::read(&errors).unwrap(), b"");
    assert_eq!(lines(&d.join("a.log")).len(), 1);
}

#[test]
fn environment_wins_over_flags() {
    let d = dir("env");
    let file = d.join("a.log");
    let guard = run(
        &["--log-format", "text", "--log-file", file.to_str().unwrap()],
        &[("TNG_LOG_FORMAT", "json")],
        || info!("hello"),
    );
    drop(guard);
    assert_eq!(json_lines(&file)[0]["fields"]["message"], "hello");
}

#[test]
fn rolling_under_a_flood_keeps_exactly_n_bounded_backups() {
    const MAX: u64 = 4096;
    const LINES: usize = 3000;
    let d = dir("rolling");
    let file = d.join("a.log");
    let guard = run(
        &[
            "--log-file",
            file.to_str().unwrap(),
            "--log-rolling",
            "--log-max-size",
            "4KB",
            "--log-max-backups",
            "3",
        ],
        &[],
        || {
            for i in 0..LINES {
                info!("line {i:05} {}", "x".repeat(i % 50));
            }
        },
    );
    let stats = guard.stats();
    drop(guard);
    assert_eq!(
        (
            stats.main.written,
            stats.main.lost_queue_full,
            stats.main.lost_write_failed
        ),
        (LINES as u64, 0, 0)
    );
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.log", "a.log.1", "a.log.2", "a.log.3"]);
    let longest = lines(&file).iter().map(|l| l.len() + 1).max().unwrap() as u64;
    let mut numbers = Vec::new();
    for name in ["a.log.3", "a.log.2", "a.log.1", "a.log"] {
        let path = d.join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= MAX, "{name}: {size} bytes > {MAX}");
        if name != "a.log" {
            // Rotated only when the next line would not fit.
            assert!(size + longest + 60 > MAX, "{name}: only {size} bytes");
        }
        for line in lines(&path) {
            let (_, rest) = line.split_once("files: line ").expect("whole line");
            let (n, pad) = rest.split_once(' ').unwrap_or((rest, ""));
            let n: usize = n.parse().unwrap();
            assert_eq!(pad, "x".repeat(n % 50), "line {n} cut");
            numbers.push(n);
        }
    }
    // The four files hold the newest lines, in order, without a gap.
    let first = numbers[0];
    assert_eq!(numbers, (first..LINES).collect::<Vec<_>>());
}

#[test]
fn a_non_regular_path_disables_rolling_with_a_warning() {
    let d = dir("devnull");
    let file = d.join("a.log");
    let guard = run(
        &[
            "--log-file",
            file.to_str().unwrap(),
            "--log-error-file",
            "/dev/null",
            "--log-rolling",
            "--log-max-size",
            "0",
        ],
        &[],
        || {
            for i in 0..50 {
                error!("into the void {i}");
            }
        },
    );
    let stats = guard.stats();
    drop(guard);
    let main = lines(&file);
    assert_eq!(main.len(), 1, "{main:?}");
    assert!(
        main[0].ends_with(
            " WARN tng::logging: --log-rolling ignored for /dev/null: not a regular file; appending to it without rotation"
        ),
        "{main:?}"
    );
    assert_eq!(stats.error.unwrap().written, 50);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!std::path::Path::new("/dev/null.1").exists());
}

#[test]
fn a_failing_disk_loses_lines_counted_without_failing_the_caller() {
    const LINES: u64 = 500;
    let guard = run(&["--log-file", "/dev/full"], &[], || {
        for i in 0..LINES {
            warn!("cannot be stored {i}");
        }
    });
    let stats = guard.stats().main;
    drop(guard);
    assert_eq!(
        (
            stats.written,
            stats.lost_queue_full,
            stats.lost_write_failed
        ),
        (0, 0, LINES)
    );
}

#[test]
fn a_disk_that_fills_up_and_frees_again_reports_the_loss() {
    let d = dir("enospc");
    let mount = d.join("mnt");
    let _tmpfs = Tmpfs::mount(&mount, "size=32k");
    let filler = mount.join("filler");
    std::fs::write(&filler, vec![0u8; 24 << 10]).unwrap();
    let file = mount.join("a.log");
    let logging = tng_logging::build::<tracing_subscriber::Registry>(
        &args(&[
            "--log-format",
            "json",
            "--log-file",
            file.to_str().unwrap(),
            "--log-rate-limit",
            "off",
        ]),
        &|_| None,
    )
    .unwrap();
    let guard = logging.guard;
    let subscriber = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(logging.layer)
    };
    let dispatch = tracing::Dispatch::new(subscriber);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..200 {
            warn!(n = i, "filling the disk {}", "y".repeat(100));
        }
    });
    assert!(guard.flush(std::time::Duration::from_secs(60)));
    let full = guard.stats().main;
    assert!(full.lost_write_failed > 0, "{full:?}");
    assert_eq!(full.written + full.lost_write_failed, 200);

    std::fs::remove_file(&filler).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..10 {
            info!(n = i, "after");
        }
    });
    assert!(guard.flush(std::time::Duration::from_secs(60)));
    let after = guard.stats().main;
    assert_eq!(after.written, full.written + 10);
    assert_eq!(after.lost_write_failed, full.lost_write_failed);
    drop(guard);

    let text = std::fs::read_to_string(&file).unwrap();
    let mut parsed = Vec::new();
    let mut broken = 0;
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => parsed.push(v),
            // The line the disk filled up in the middle of.
            Err(_) => broken += 1,
        }
    }
    assert!(broken <= 1, "{broken} broken lines");
    let messages: Vec<&str> = parsed
        .iter()
        .map(|v| v["fields"]["message"].as_str().unwrap())
        .collect();
    let filling = messages.iter().filter(|m| m.starts_with("filling")).count() as u64;
    assert_eq!(filling, full.written);
    let tail: Vec<&str> = messages[messages.len() - 11..].to_vec();
    assert_eq!(&tail[..10], ["after"; 10]);
    let report = parsed.last().unwrap();
    assert_eq!(report["level"], "WARN");
    assert_eq!(report["target"], "tng::logging");
    assert_eq!(report["fields"]["lost"], full.lost_write_failed);
    assert_eq!(report["fields"]["lost_total"], full.lost_write_failed);
    assert_eq!(
        report["fields"]["message"],
        format!(
            "{} log lines lost: writing failed: No space left on device (os error 28)",
            full.lost_write_failed
        )
    );
}

#[test]
fn start_up_errors_name_the_flag_or_variable_and_the_path() {
    let d = dir("errors");
    let missing = d.join("no-such-dir").join("a.log");
    let build = |argv: &[&str], env: &[(&str, &str)]| {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tng_logging::build::<tracing_subscriber::Registry>(&args(argv), &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .err()
        .expect("must fail")
        .to_string()
    };
    assert_eq!(
        build(&["--log-file", missing.to_str().unwrap()], &[]),
        format!(
            "--log-file {}: cannot open: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(
        build(&[], &[("TNG_LOG_ERROR_FILE", d.to_str().unwrap())]),
        format!(
            "TNG_LOG_ERROR_FILE {}: cannot open: Is a directory (os error 21)",
            d.display()
        )
    );
    let same = d.join("same.log");
    assert_eq!(
        build(
            &[
                "--log-file",
                same.to_str().unwrap(),
                "--log-error-file",
                same.to_str().unwrap()
            ],
            &[]
        ),
        format!(
            "--log-error-file {}: is the same file as --log-file; give the error file its own path",
            same.display()
        )
    );
}

mod lines {
    pub fn raw(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }
}
