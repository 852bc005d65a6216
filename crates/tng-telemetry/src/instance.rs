//! The counters of one ingress or egress entry, and the cheap handles the data path updates
//! them through. Every update is one or two relaxed atomic operations on memory allocated when
//! the entry was built; nothing allocates or hashes per connection or request.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::access_log::{AccessRecord, Outcome};
use crate::histogram::{Histogram, CONNECTION_BOUNDS, REQUEST_BOUNDS};
use crate::labels::{
    Attestation, AttestationFailure, Direction, Endpoints, InstanceLabels, Limit, StatusClass,
};

#[derive(Debug)]
pub(crate) struct Cells {
    pub(crate) direction: Direction,
    /// The entry's index in `add_ingress` / `add_egress`, as upstream prints it.
    pub(crate) id: String,
    pub(crate) labels: InstanceLabels,
    /// Spans go to a trace exporter: only then are results recorded onto them (for the text
    /// log they would be formatted and never printed).
    pub(crate) traced: bool,
    pub(crate) cx_total: AtomicU64,
    pub(crate) cx_active: AtomicI64,
    pub(crate) cx_failed: AtomicU64,
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) requests: [AtomicU64; StatusClass::ALL.len()],
    pub(crate) request_duration: Histogram,
    pub(crate) connection_duration: Histogram,
    pub(crate) attestation_ok: AtomicU64,
    pub(crate) attestation_failed: [AtomicU64; AttestationFailure::ALL.len()],
    pub(crate) key_rotations: AtomicU64,
    /// Unix seconds at which the active OHTTP key became active; 0 = never reported.
    pub(crate) active_key_since: AtomicU64,
    pub(crate) key_retries: AtomicU64,
    pub(crate) replays_refused: AtomicU64,
    pub(crate) cluster_reported: AtomicBool,
    pub(crate) cluster_alive: AtomicU64,
    pub(crate) cluster_serving: AtomicU64,
    pub(crate) limit_hits: [AtomicU64; Limit::ALL.len()],
}

impl Cells {
    pub(crate) fn new(
        direction: Direction,
        id: usize,
        labels: InstanceLabels,
        traced: bool,
    ) -> Self {
        Cells {
            direction,
            id: id.to_string(),
            labels,
            traced,
            cx_total: AtomicU64::new(0),
            cx_active: AtomicI64::new(0),
            cx_failed: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            requests: Default::default(),
            request_duration: Histogram::new(REQUEST_BOUNDS),
            connection_duration: Histogram::new(CONNECTION_BOUNDS),
            attestation_ok: AtomicU64::new(0),
            attestation_failed: Default::default(),
            key_rotations: AtomicU64::new(0),
            active_key_since: AtomicU64::new(0),
            key_retries: AtomicU64::new(0),
            replays_refused: AtomicU64::new(0),
            cluster_reported: AtomicBool::new(false),
            cluster_alive: AtomicU64::new(0),
            cluster_serving: AtomicU64::new(0),
            limit_hits: Default::default(),
        }
    }

    /// Upstream's attribute set (observability spec §2.2), in upstream's insertion order.
    pub(crate) fn upstream_attributes(&self) -> Vec<(String, String)> {
        let d = self.direction.as_str();
        let mut attrs = vec![
            (format!("{d}_type"), self.labels.mode.clone()),
            (format!("{d}_id"), self.id.clone()),
        ];
        match &self.labels.endpoints {
            Endpoints::InOut { listen, upstream } => {
                attrs.push((format!("{d}_in"), listen.clone()));
                attrs.push((format!("{d}_out"), upstream.clone()));
            }
            Endpoints::ProxyListen(listen) => {
                attrs.push((format!("{d}_proxy_listen"), listen.clone()));
            }
            Endpoints::ListenPort(port) => {
                attrs.push((format!("{d}_listen_port"), port.to_string()));
            }
        }
        attrs
    }
}

/// The metrics of one ingress or egress entry. Cloning is one `Arc` increment; keep one per
/// entry (or per connection task) and update through it.
#[derive(Debug, Clone)]
pub struct InstanceMetrics {
    pub(crate) cells: Arc<Cells>,
}

impl InstanceMetrics {
    /// A counted unit of work starts (upstream's "connection": a client stream on the ingress,
    /// an inner stream or OHTTP tunnel request on the egress, spec §2.3). Hold the guard for as
    /// long as the unit lasts.
    pub fn connection(&self) -> ConnGuard {
        self.cells.cx_total.fetch_add(1, Relaxed);
        self.cells.cx_active.fetch_add(1, Relaxed);
        ConnGuard {
            metrics: self.clone(),
            started: Instant::now(),
            failed: false,
            stream: None,
        }
    }

    /// A connection the gateway carries as a byte stream (rats-TLS, either side): counted like
    /// [`connection`](Self::connection), with a connection span, and one access-log event when
    /// the guard drops (bytes each way, duration, `upstream`, outcome, whether the peer's
    /// attestation was verified). One allocation per connection, none per byte.
    pub fn stream(
        &self,
        client: &dyn std::fmt::Display,
        upstream: String,
        attested: bool,
    ) -> ConnGuard {
        let mut guard = self.connection();
        guard.stream = Some(Box::new(StreamLog {
            span: self.connection_span(client),
            upstream,
            attested,
            outcome: Outcome::Ok,
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
        }));
        guard
    }

    /// Bytes written towards the counted stream's peer (client on the ingress, tunnel on the
    /// egress); counted as they flow, not batched.
    pub fn tx(&self, bytes: u64) {
        self.cells.tx_bytes.fetch_add(bytes, Relaxed);
    }

    /// Bytes read from the counted stream's peer.
    pub fn rx(&self, bytes: u64) {
        self.cells.rx_bytes.fetch_add(bytes, Relaxed);
    }

    /// One HTTP request finished: `status` is what was answered (`None`: no response), `elapsed`
    /// runs from the request head to the end of the response body.
    pub fn request_done(&self, status: Option<u16>, elapsed: Duration) {
        let class = StatusClass::of(status) as usize;
        if let Some(counter) = self.cells.requests.get(class) {
            counter.fetch_add(1, Relaxed);
        }
        self.cells.request_duration.observe(elapsed);
    }

    pub fn attestation(&self, outcome: Attestation) {
        match outcome {
            Attestation::Verified => {
                self.cells.attestation_ok.fetch_add(1, Relaxed);
            }
            Attestation::Failed(reason) => {
                if let Some(counter) = self.cells.attestation_failed.get(reason as usize) {
                    counter.fetch_add(1, Relaxed);
                }
            }
        }
    }

    pub fn limit_hit(&self, limit: Limit) {
        if let Some(counter) = self.cells.limit_hits.get(limit as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Ingress: a request was retried after the egress answered 422 (unknown or no active key).
    pub fn key_retry(&self) {
        self.cells.key_retries.fetch_add(1, Relaxed);
    }

    /// Egress: a request was refused as a replay.
    pub fn replay_refused(&self) {
        self.cells.replays_refused.fetch_add(1, Relaxed);
    }

    /// Egress key manager: a new OHTTP key became the active one at `activated_at` (call it for
    /// the first key too, so the key's age is known).
    pub fn key_rotated(&self, activated_at: SystemTime) {
        self.cells.key_rotations.fetch_add(1, Relaxed);
        self.key_active_since(activated_at);
    }

    /// Sets the active key's activation time without counting a rotation (e.g. a key loaded
    /// from a file or shared by a peer).
    pub fn key_active_since(&self, activated_at: SystemTime) {
        let secs = activated_at
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs().max(1));
        self.cells.active_key_since.store(secs, Relaxed);
    }

    /// `peer_shared` key manager: current cluster view (members alive, members serving keys).
    pub fn cluster_members(&self, alive: u64, serving: u64) {
        self.cells.cluster_alive.store(alive, Relaxed);
        self.cells.cluster_serving.store(serving, Relaxed);
        self.cells.cluster_reported.store(true, Relaxed);
    }
}

/// One counted unit in flight. Dropping it ends the unit: `cx_active` − 1 and its duration goes
/// into the connection histogram.
#[derive(Debug)]
pub struct ConnGuard {
    metrics: InstanceMetrics,
    started: Instant,
    failed: bool,
    /// Only for [`InstanceMetrics::stream`] units, which log themselves when they end.
    stream: Option<Box<StreamLog>>,
}

#[derive(Debug)]
struct StreamLog {
    span: tracing::Span,
    upstream: String,
    attested: bool,
    outcome: Outcome,
    rx: AtomicU64,
    tx: AtomicU64,
}

impl ConnGuard {
    /// Marks the unit failed (`cx_failed` + 1, once however often it is called).
    pub fn failed(&mut self) {
        self.failed_with(Outcome::Error);
    }

    /// Marks the unit failed, saying how (for the access log of a stream unit).
    pub fn failed_with(&mut self, outcome: Outcome) {
        if !self.failed {
            self.failed = true;
            self.metrics.cells.cx_failed.fetch_add(1, Relaxed);
        }
        if let Some(log) = &mut self.stream {
            log.outcome = outcome;
        }
    }

    pub fn tx(&self, bytes: u64) {
        self.metrics.tx(bytes);
        if let Some(log) = &self.stream {
            log.tx.fetch_add(bytes, Relaxed);
        }
    }

    pub fn rx(&self, bytes: u64) {
        self.metrics.rx(bytes);
        if let Some(log) = &self.stream {
            log.rx.fetch_add(bytes, Relaxed);
        }
    }

    /// Records, for a stream unit's access log, whether the peer's attestation was verified.
    pub fn set_attested(&mut self, attested: bool) {
        if let Some(log) = &mut self.stream {
            log.attested = attested;
        }
    }

    /// The connection span of a stream unit, to run the connection's work in.
    pub fn span(&self) -> Option<&tracing::Span> {
        self.stream.as_ref().map(|log| &log.span)
    }

    pub fn metrics(&self) -> &InstanceMetrics {
        &self.metrics
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.metrics.cells.cx_active.fetch_sub(1, Relaxed);
        self.metrics.cells.connection_duration.observe(elapsed);
        if let Some(log) = self.stream.take() {
            AccessRecord {
                method: None,
                path: None,
                status: None,
                bytes_in: log.rx.load(Relaxed),
                bytes_out: log.tx.load(Relaxed),
                duration: elapsed,
                upstream: &log.upstream,
                outcome: log.outcome,
                attested: log.attested,
            }
            .emit(&self.metrics, &log.span);
        }
    }
}
