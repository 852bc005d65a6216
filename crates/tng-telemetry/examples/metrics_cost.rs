//! Cost of one request's worth of metric updates on the data path, in nanoseconds: a counted
//! connection (guard created and dropped, with a failure check), bytes both ways and a finished
//! request with its histogram. Run with
//! `cargo run --release -p tng-telemetry --example metrics_cost`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tng_telemetry::{Endpoints, InstanceLabels, InstanceMetrics, Telemetry, Transport};

const ITERATIONS: u64 = 5_000_000;

fn one_request(m: &InstanceMetrics) {
    let conn = m.connection();
    conn.rx(black_box(89));
    conn.tx(black_box(210));
    m.request_done(black_box(Some(200)), black_box(Duration::from_micros(700)));
    drop(conn);
}

fn per_request_ns(m: &InstanceMetrics) -> f64 {
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        one_request(m);
    }
    start.elapsed().as_nanos() as f64 / ITERATIONS as f64
}

fn main() {
    let telemetry = Telemetry::disabled();
    let m = telemetry.ingress(
        0,
        InstanceLabels {
            mode: "mapping".into(),
            transport: Transport::Ohttp,
            endpoints: Endpoints::InOut {
                listen: "0.0.0.0:8080".into(),
                upstream: "198.18.0.2:8080".into(),
            },
        },
    );
    per_request_ns(&m); // warm-up
    let single = per_request_ns(&m);
    println!("one thread:  {single:.1} ns per request (connection + rx + tx + request_done)");

    // Two threads on one entry: the shared cache lines are the worst case.
    let m = Arc::new(m);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || per_request_ns(&m))
        })
        .collect();
    let contended: Vec<f64> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or(f64::NAN))
        .collect();
    println!(
        "two threads, one entry: {:.1} / {:.1} ns per request",
        contended[0], contended[1]
    );
    let text = telemetry.prometheus_text();
    let start = Instant::now();
    let mut out = String::new();
    for _ in 0..1000 {
        out.clear();
        telemetry.write_prometheus(&mut out);
    }
    println!(
        "one scrape (1 entry, {} bytes): {:.1} µs",
        text.len(),
        start.elapsed().as_nanos() as f64 / 1000.0 / 1000.0
    );
}
