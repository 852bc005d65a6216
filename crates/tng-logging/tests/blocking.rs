//! A destination that blocks (a FIFO nobody reads) never blocks the threads that log; what
//! did not fit in the queue is counted and reported once the writer gets going again.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use tracing::{info, Level};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn a_blocked_writer_never_blocks_the_logging_thread_and_losses_are_reported() {
    const LINES: u64 = 30_000;
    let d = dir("fifo");
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let logging = tng_logging::build::<tracing_subscriber::Registry>(
        &args(&[
            "--log-format",
            "json",
            "--log-file",
            fifo.to_str().unwrap(),
            "--log-rate-limit",
            "off",
        ]),
        &|_| None,
    )
    .unwrap();
    let guard = logging.guard;
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(logging.layer));

    // Nobody has the FIFO open for reading: the writer thread is stuck opening it.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            for n in 0..LINES {
                info!(n, "flood");
            }
        });
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the logging thread was blocked by the log writer");
    let blocked = guard.stats().main;
    assert_eq!(blocked.written, 0);
    assert!(blocked.lost_queue_full > 0, "{blocked:?}");

    // A reader appears; it reads up to the marker written after everything else.
    let path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        let mut lines = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.unwrap();
            let end = line == "end of test";
            lines.push(line);
            if end {
                break;
            }
        }
        lines
    });
    assert!(guard.flush(Duration::from_secs(60)), "flush timed out");
    guard.sink().write_formatted(Level::INFO, b"end of test");
    assert!(guard.flush(Duration::from_secs(60)), "flush timed out");
    let lines = reader.join().unwrap();
    let stats = guard.stats().main;

    let mut flood = Vec::new();
    let mut reported = 0;
    for line in &lines[..lines.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["fields"]["message"].as_str().unwrap() {
            "flood" => flood.push(v["fields"]["n"].as_u64().unwrap()),
            message => {
                assert_eq!(v["target"], "tng::logging");
                assert_eq!(v["level"], "WARN");
                let lost = v["fields"]["lost"].as_u64().unwrap();
                assert_eq!(
                    message,
                    format!("{lost} log lines lost: the log writer could not keep up and its queue was full")
                );
                reported += lost;
            }
        }
    }
    assert_eq!(stats.written, flood.len() as u64 + 1);
    assert_eq!(stats.lost_queue_full, blocked.lost_queue_full);
    assert_eq!(reported, stats.lost_queue_full);
    assert_eq!(flood.len() as u64 + reported, LINES);
    // What got through is the start of the flood, in order.
    assert_eq!(flood, (0..flood.len() as u64).collect::<Vec<_>>());
}
