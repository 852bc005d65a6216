//! The egress restarted under a steady load. Its keys are self-generated, so the new process
//! has a new key: the ingress must notice by itself (422 → refetch → replay of the small
//! request) without any request failing except the ones the dead process was serving.
//!
//! While no egress exists the load is held (a restart takes as long as a process start, which
//! is not the ingress's doing); one probe request in that window pins the status a client
//! gets then.

use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::*;

use crate::common::*;

const LOOPS: usize = 4;

fn restart_under_load(signal: &str) {
    let backend = Backend::start();
    let mut t = tunnel(
        backend.addr(),
        json!({"ohttp": {"key": {"source": "self_generated", "rotation_interval": 600}}}),
        json!({}),
    );
    let old_key = t.egress.egress_public_keys(0);
    let load = Load::start(&t.ingress_addr(), LOOPS);
    load.wait_successes(0, 30, GENEROUS);
    pause(Duration::from_secs(2));

    let in_flight = load.pause();
    let before = load.outcomes().len();
    let killed_at = Instant::now();
    if signal == "KILL" {
        kill(&mut t.egress.proc);
    } else {
        t.egress.proc.signal(signal);
        let status = t
            .egress
            .proc
            .wait_timeout(GENEROUS)
            .expect("egress exits after SIGTERM");
        assert!(
            status.success(),
            "egress exit {status}: {}",
            t.egress.log_tail(20)
        );
    }
    load.wait_idle(GENEROUS);
    let failed_at_stop = failures(&load.outcomes()[before..]);

    // Nothing listens now: the exact answer a client gets meanwhile.
    let probe = curl_status(&["-d", "while down", &t.url("/echo")]);
    let (status, code, message) = error_of(&probe);
    assert_eq!(
        (status, code.as_str()),
        (502, "HttpCipherTextForwardError"),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");

    let new_egress = relaunch(&t.egress, "egress-restarted");
    let downtime = killed_at.elapsed();
    let old = std::mem::replace(&mut t.egress, new_egress);
    drop(old);
    let new_key = t.egress.egress_public_keys(0);
    assert_ne!(old_key, new_key, "a restarted egress must have a new key");

    let ok_before = load.outcomes().iter().filter(|o| o.ok).count();
    let resumed = Instant::now();
    load.resume();
    load.wait_successes(ok_before, 1, GENEROUS);
    let first_ok = load
        .outcomes()
        .iter()
        .filter(|o| o.ok && o.start >= resumed)
        .map(|o| o.end)
        .min()
        .expect("a success after the restart");
    let recovery = first_ok - resumed;
    load.wait_successes(ok_before, 40, GENEROUS);
    pause(Duration::from_secs(2));
    let outcomes = load.stop();
    let failed_after: Vec<Outcome> = failures(&outcomes)
        .into_iter()
        .filter(|o| o.start >= resumed)
        .collect();
    let all_failed = failures(&outcomes);
    let ok = outcomes.iter().filter(|o| o.ok).count();

    println!(
        "[faults] egress SIG{signal} under load: {} requests, {} failed ({} in flight at the stop), \
         downtime {} ms, first success {} ms after the new egress was ready",
        outcomes.len(),
        all_failed.len(),
        in_flight,
        downtime.as_millis(),
        recovery.as_millis()
    );
    for o in &all_failed {
        println!("[faults]   failed: {}", o.detail);
        // The ingress answered each of them itself, with the documented error (never a hang,
        // never a response cut without a status).
        assert!(
            o.detail.contains(": 502 ") && o.detail.contains("HttpCipherTextForwardError"),
            "{}",
            o.detail
        );
    }
    // Every failure is one of the requests the old process was serving.
    assert_eq!(
        all_failed.len(),
        failed_at_stop.len(),
        "requests failed after the restart: {:?}",
        failed_after.iter().map(|o| &o.detail).collect::<Vec<_>>()
    );
    assert!(
        failed_at_stop.len() <= in_flight,
        "{} failures but at most {in_flight} requests in flight: {:?}",
        failed_at_stop.len(),
        failed_at_stop.iter().map(|o| &o.detail).collect::<Vec<_>>()
    );
    if signal == "TERM" {
        // A graceful stop lets the in-flight requests finish: nothing is lost, nothing is
        // delivered twice (a replay only follows a 422, i.e. a request the backend never saw).
        assert!(
            all_failed.is_empty(),
            "{:?}",
            all_failed.iter().map(|o| &o.detail).collect::<Vec<_>>()
        );
        assert_eq!(backend.requests(), ok as u64);
    }
    // The recovery went through the documented path: the old key was refused (422, at most
    // once per client: the refetch is shared) and replaced.
    let refused = t
        .egress
        .log()
        .lines()
        .filter(|l| l.contains("refused: ServerKeyConfigNotFound"))
        .count();
    println!("[faults]   422s answered by the new egress: {refused}");
    assert!((1..=LOOPS).contains(&refused), "{refused} 422s");
    let log = t.ingress.log();
    let new_hex = new_key[0].as_str();
    assert!(
        log.lines()
            .any(|l| l.contains("using egress key") && l.contains(new_hex)),
        "the ingress never switched to the new key:\n{}",
        t.ingress.log_tail(20)
    );
}

#[test]
fn egress_sigkill_under_load_fails_only_the_requests_in_flight() {
    restart_under_load("KILL");
}

#[test]
fn egress_sigterm_under_load_loses_no_request() {
    restart_under_load("TERM");
}
