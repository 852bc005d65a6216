//! Every entry's counters plus the process-wide `live` flag: the single source all exporters
//! read, so Prometheus, stdout, Falcon and OTLP always agree.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use crate::instance::Cells;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    instances: RwLock<Vec<Arc<Cells>>>,
    pub(crate) live: AtomicBool,
}

/// Upstream's instrument kinds as the push exporters show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleKind {
    Counter,
    Gauge,
}

/// One data point of upstream's six instruments (observability spec §2.1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: &'static str,
    pub(crate) value: i64,
    pub(crate) kind: SampleKind,
    pub(crate) attributes: Vec<(String, String)>,
}

/// Upstream's per-entry instruments in registration order, with how to read each.
/// Reads one instrument's value from an entry's cells.
pub(crate) type Read = fn(&Cells) -> i64;

pub(crate) const UPSTREAM_INSTRUMENTS: [(&str, Read); 5] = [
    ("cx_total", |c| to_i64(c.cx_total.load(Relaxed))),
    ("cx_active", |c| c.cx_active.load(Relaxed)),
    ("cx_failed", |c| to_i64(c.cx_failed.load(Relaxed))),
    ("tx_bytes_total", |c| to_i64(c.tx_bytes.load(Relaxed))),
    ("rx_bytes_total", |c| to_i64(c.rx_bytes.load(Relaxed))),
];

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Registry {
    pub(crate) fn add(&self, cells: Arc<Cells>) {
        self.instances
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(cells);
    }

    pub(crate) fn instances(&self) -> Vec<Arc<Cells>> {
        self.instances
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every series of every upstream instrument: each instrument for every entry, then `live`.
    pub(crate) fn upstream_samples(&self) -> (SystemTime, Vec<Sample>) {
        let time = SystemTime::now();
        let instances = self.instances();
        let mut samples = Vec::with_capacity(instances.len() * 5 + 1);
        for (name, read) in UPSTREAM_INSTRUMENTS {
            for cells in &instances {
                samples.push(Sample {
                    name,
                    value: read(cells),
                    kind: SampleKind::Counter,
                    attributes: cells.upstream_attributes(),
                });
            }
        }
        samples.push(Sample {
            name: "live",
            value: i64::from(self.live.load(Relaxed)),
            kind: SampleKind::Gauge,
            attributes: Vec::new(),
        });
        (time, samples)
    }
}
