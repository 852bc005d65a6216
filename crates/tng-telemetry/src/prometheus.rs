//! `GET /metrics`: the Prometheus / OpenMetrics text exposition of every entry's counters,
//! encoded by `prometheus-client` from the shared atomics at scrape time.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::histogram::HistogramSnapshot;
use crate::instance::Cells;
use crate::labels::{AttestationFailure, Direction, Endpoints, Limit, StatusClass, Transport};
use crate::registry::Registry;

/// The `content-type` of [`crate::Telemetry::prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) fn encode(registry: Arc<Registry>, out: &mut String) -> fmt::Result {
    let mut r = prometheus_client::registry::Registry::with_prefix("tng");
    r.register_collector(Box::new(TngCollector(registry)));
    prometheus_client::encoding::text::encode(out, &r)
}

#[derive(Debug)]
struct TngCollector(Arc<Registry>);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn base(c: &Cells) -> Labels<'_> {
    vec![
        ("direction", c.direction.as_str()),
        ("id", c.id.as_str()),
        ("type", c.labels.mode.as_str()),
        ("transport", c.labels.transport.as_str()),
    ]
}

fn with<'a>(c: &'a Cells, key: &'static str, value: &'a str) -> Labels<'a> {
    let mut labels = base(c);
    labels.push((key, value));
    labels
}

fn counter(e: &mut MetricEncoder<'_>, labels: &Labels<'_>, v: u64) -> fmt::Result {
    e.encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(e: &mut MetricEncoder<'_>, labels: &Labels<'_>, v: i64) -> fmt::Result {
    e.encode_family(labels)?.encode_gauge(&v)
}

fn histogram(e: &mut MetricEncoder<'_>, labels: &Labels<'_>, h: &HistogramSnapshot) -> fmt::Result {
    e.encode_family(labels)?.encode_histogram::<NoLabelSet>(
        h.sum_seconds,
        h.count,
        &h.buckets,
        None,
    )
}

struct Family<'e, 'w> {
    encoder: &'e mut DescriptorEncoder<'w>,
}

impl Family<'_, '_> {
    fn each(
        &mut self,
        instances: &[Arc<Cells>],
        (name, help, unit, kind): (&str, &str, Option<Unit>, MetricType),
        filter: impl Fn(&Cells) -> bool,
        mut write: impl FnMut(&mut MetricEncoder<'_>, &Cells) -> fmt::Result,
    ) -> fmt::Result {
        let selected: Vec<&Arc<Cells>> = instances.iter().filter(|c| filter(c)).collect();
        if selected.is_empty() {
            return Ok(());
        }
        let mut e = self
            .encoder
            .encode_descriptor(name, help, unit.as_ref(), kind)?;
        for c in selected {
            write(&mut e, c)?;
        }
        Ok(())
    }
}

fn ohttp(c: &Cells, direction: Direction) -> bool {
    c.labels.transport == Transport::Ohttp && c.direction == direction
}

fn u64_to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for TngCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let registry = &self.0;
        let instances = registry.instances();
        {
            let mut e = encoder.encode_descriptor(
                "ready",
                "1 once every ingress, egress and the control interface is serving (upstream's `live`).",
                None,
                MetricType::Gauge,
            )?;
            e.encode_gauge(&i64::from(registry.live.load(Relaxed)))?;
        }
        let mut f = Family {
            encoder: &mut encoder,
        };
        let all = |_: &Cells| true;
        f.each(
            &instances,
            (
                "instance",
                "Configured ingress and egress entries and their addresses.",
                None,
                MetricType::Info,
            ),
            all,
            |e, c| {
                let mut labels = base(c);
                let port;
                match &c.labels.endpoints {
                    Endpoints::InOut { listen, upstream } => {
                        labels.push(("listen", listen));
                        labels.push(("upstream", upstream));
                    }
                    Endpoints::ProxyListen(listen) => labels.push(("listen", listen)),
                    Endpoints::ListenPort(p) => {
                        port = p.to_string();
                        labels.push(("listen", &port));
                    }
                }
                e.encode_info(&labels)
            },
        )?;
        f.each(
            &instances,
            ("connections", "Connections (ingress: client streams; egress: tunnelled streams and OHTTP tunnel requests) since start (upstream `cx_total`).", None, MetricType::Counter),
            all,
            |e, c| counter(e, &base(c), c.cx_total.load(Relaxed)),
        )?;
        f.each(
            &instances,
            (
                "connections_active",
                "Connections in progress (upstream `cx_active`).",
                None,
                MetricType::Gauge,
            ),
            all,
            |e, c| gauge(e, &base(c), c.cx_active.load(Relaxed)),
        )?;
        f.each(
            &instances,
            (
                "connections_failed",
                "Connections that failed since start (upstream `cx_failed`).",
                None,
                MetricType::Counter,
            ),
            all,
            |e, c| counter(e, &base(c), c.cx_failed.load(Relaxed)),
        )?;
        f.each(
            &instances,
            (
                "connection_duration",
                "How long connections lasted.",
                Some(Unit::Seconds),
                MetricType::Histogram,
            ),
            all,
            |e, c| histogram(e, &base(c), &c.connection_duration.snapshot()),
        )?;
        f.each(
            &instances,
            ("sent", "Bytes sent to the client (ingress) or into the tunnel (egress) (upstream `tx_bytes_total`).", Some(Unit::Bytes), MetricType::Counter),
            all,
            |e, c| counter(e, &base(c), c.tx_bytes.load(Relaxed)),
        )?;
        f.each(
            &instances,
            ("received", "Bytes received from the client (ingress) or out of the tunnel (egress) (upstream `rx_bytes_total`).", Some(Unit::Bytes), MetricType::Counter),
            all,
            |e, c| counter(e, &base(c), c.rx_bytes.load(Relaxed)),
        )?;
        f.each(
            &instances,
            ("requests", "HTTP requests completed, by response status class (`none`: ended without a response).", None, MetricType::Counter),
            all,
            |e, c| {
                for class in StatusClass::ALL {
                    let v = c.requests.get(class as usize).map_or(0, |a| a.load(Relaxed));
                    counter(e, &with(c, "status_class", class.as_str()), v)?;
                }
                Ok(())
            },
        )?;
        f.each(
            &instances,
            (
                "request_duration",
                "HTTP request durations, request head to end of response body.",
                Some(Unit::Seconds),
                MetricType::Histogram,
            ),
            all,
            |e, c| histogram(e, &base(c), &c.request_duration.snapshot()),
        )?;
        f.each(
            &instances,
            (
                "attestation_verifications",
                "Remote attestation verifications by result.",
                None,
                MetricType::Counter,
            ),
            all,
            |e, c| {
                let failed: u64 = c.attestation_failed.iter().map(|a| a.load(Relaxed)).sum();
                counter(
                    e,
                    &with(c, "result", "success"),
                    c.attestation_ok.load(Relaxed),
                )?;
                counter(e, &with(c, "result", "failure"), failed)
            },
        )?;
        f.each(
            &instances,
            (
                "attestation_failures",
                "Failed remote attestation verifications by reason.",
                None,
                MetricType::Counter,
            ),
            all,
            |e, c| {
                for reason in AttestationFailure::ALL {
                    let v = c
                        .attestation_failed
                        .get(reason as usize)
                        .map_or(0, |a| a.load(Relaxed));
                    counter(e, &with(c, "reason", reason.as_str()), v)?;
                }
                Ok(())
            },
        )?;
        f.each(
            &instances,
            (
                "limit_hits",
                "Connections or requests refused or cut by a configured limit.",
                None,
                MetricType::Counter,
            ),
            all,
            |e, c| {
                for limit in Limit::ALL {
                    let v = c
                        .limit_hits
                        .get(limit as usize)
                        .map_or(0, |a| a.load(Relaxed));
                    counter(e, &with(c, "limit", limit.as_str()), v)?;
                }
                Ok(())
            },
        )?;
        f.each(
            &instances,
            (
                "ohttp_key_retries",
                "Requests retried after the egress answered 422 (key unknown or not active).",
                None,
                MetricType::Counter,
            ),
            |c| ohttp(c, Direction::Ingress),
            |e, c| counter(e, &base(c), c.key_retries.load(Relaxed)),
        )?;
        f.each(
            &instances,
            (
                "ohttp_replays_refused",
                "OHTTP requests refused as replays.",
                None,
                MetricType::Counter,
            ),
            |c| ohttp(c, Direction::Egress),
            |e, c| counter(e, &base(c), c.replays_refused.load(Relaxed)),
        )?;
        f.each(
            &instances,
            (
                "ohttp_key_rotations",
                "OHTTP key rotations (a new key became active).",
                None,
                MetricType::Counter,
            ),
            |c| ohttp(c, Direction::Egress),
            |e, c| counter(e, &base(c), c.key_rotations.load(Relaxed)),
        )?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        f.each(
            &instances,
            (
                "ohttp_active_key_age",
                "Time since the active OHTTP key became active.",
                Some(Unit::Seconds),
                MetricType::Gauge,
            ),
            |c| ohttp(c, Direction::Egress) && c.active_key_since.load(Relaxed) != 0,
            |e, c| {
                gauge(
                    e,
                    &base(c),
                    u64_to_i64(now.saturating_sub(c.active_key_since.load(Relaxed))),
                )
            },
        )?;
        f.each(
            &instances,
            (
                "cluster_members",
                "Members of the `peer_shared` key cluster, by state (alive, serving keys).",
                None,
                MetricType::Gauge,
            ),
            |c| c.cluster_reported.load(Relaxed),
            |e, c| {
                gauge(
                    e,
                    &with(c, "state", "alive"),
                    u64_to_i64(c.cluster_alive.load(Relaxed)),
                )?;
                gauge(
                    e,
                    &with(c, "state", "serving"),
                    u64_to_i64(c.cluster_serving.load(Relaxed)),
                )
            },
        )?;
        Ok(())
    }
}
