//! Upstream's `stdout` and `falcon` metric exporters: a task that snapshots every series each
//! `step` and once more at shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tng_config::FalconExporter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry::{Registry, Sample, SampleKind};

/// The log target of the `stdout` exporter's events: upstream's, so log filters written for
/// upstream keep selecting them.
pub const STDOUT_METRICS_TARGET: &str = "tng::observability::metric::simple_exporter::stdout";

const FALCON_ATTEMPTS: u32 = 5;
const FALCON_RETRY_DELAY: Duration = Duration::from_secs(1);
const FALCON_TIMEOUT: Duration = Duration::from_secs(5);

/// The export interval for `step` seconds. `0` means the OpenTelemetry default, as in upstream:
/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) or 60 s.
pub(crate) fn interval(step: u64) -> Duration {
    if step > 0 {
        return Duration::from_secs(step);
    }
    std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

pub(crate) enum Sink {
    Stdout,
    Falcon(Box<Falcon>),
}

pub(crate) struct PushTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PushTask {
    /// Must be called inside a tokio runtime.
    pub(crate) fn spawn(registry: Arc<Registry>, sink: Sink, every: Duration) -> PushTask {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = stopped.changed() => true,
                };
                let (time, samples) = registry.upstream_samples();
                sink.export(time, &samples).await;
                if last {
                    break;
                }
            }
        });
        PushTask { stop, task }
    }

    /// Runs the final export and waits for it.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Sink {
    async fn export(&self, time: SystemTime, samples: &[Sample]) {
        match self {
            Sink::Stdout => {
                let metrics = StdoutSamples { time, samples };
                tracing::info!(target: STDOUT_METRICS_TARGET, metrics = ?metrics, "current metrics");
            }
            Sink::Falcon(falcon) => falcon.push(time, samples).await,
        }
    }
}

/// Renders like upstream's sample list (`[SimpleMetric { name: "cx_total", value: Number(1),
/// value_type: Counter, attributes: {…}, time: SystemTime { … } }, …]`) so existing log
/// scrapers keep parsing it.
struct StdoutSamples<'a> {
    time: SystemTime,
    samples: &'a [Sample],
}

impl fmt::Debug for StdoutSamples<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug only
        enum Value {
            Number(i64),
        }
        #[derive(Debug)]
        enum ValueType {
            Counter,
            Gauge,
        }
        struct Attributes<'a>(&'a [(String, String)]);
        impl fmt::Debug for Attributes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, v)| (k, v)))
                    .finish()
            }
        }
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug only
        struct SimpleMetric<'a> {
            name: &'a str,
            value: Value,
            value_type: ValueType,
            attributes: Attributes<'a>,
            time: SystemTime,
        }
        f.debug_list()
            .entries(self.samples.iter().map(|s| SimpleMetric {
                name: s.name,
                value: Value::Number(s.value),
                value_type: match s.kind {
                    SampleKind::Counter => ValueType::Counter,
                    SampleKind::Gauge => ValueType::Gauge,
                },
                attributes: Attributes(&s.attributes),
                time: self.time,
            }))
            .finish()
    }
}

/// An Open-Falcon agent push (observability spec §3.2).
pub(crate) struct Falcon {
    config: FalconExporter,
    url: http::Uri,
    user_agent: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FalconSample<'a> {
    endpoint: &'a str,
    metric: &'a str,
    value: i64,
    step: u64,
    counter_type: &'static str,
    tags: String,
    timestamp: u64,
}

#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("{0}")]
    Transport(#[from] hyper_util::client::legacy::Error),
    #[error("HTTP status {0}")]
    Status(http::StatusCode),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
}

impl Falcon {
    pub(crate) fn new(config: &FalconExporter, version: &str) -> Result<Falcon, String> {
        // Plain concatenation, as upstream (a trailing `/` gives `//v1/push`).
        let url = format!("{}/v1/push", config.server_url);
        let url = url
            .parse()
            .map_err(|e| format!("invalid Falcon push URL {url:?}: {e}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Falcon {
            config: config.clone(),
            url,
            user_agent: format!("tng/{version}"),
            client,
        })
    }

    pub(crate) fn body(&self, time: SystemTime, samples: &[Sample]) -> String {
        let timestamp = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let items: Vec<FalconSample<'_>> = samples
            .iter()
            .map(|s| FalconSample {
                endpoint: &self.config.endpoint,
                metric: s.name,
                value: s.value,
                step: self.config.step,
                counter_type: match s.kind {
                    SampleKind::Counter => "COUNTER",
                    SampleKind::Gauge => "GAUGE",
                },
                tags: falcon_tags(&self.config.tags, &s.attributes),
                timestamp,
            })
            .collect();
        serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
    }

    async fn push(&self, time: SystemTime, samples: &[Sample]) {
        let body = Bytes::from(self.body(time, samples));
        tracing::trace!(metrics_json = %String::from_utf8_lossy(&body), "Pushing metrics to falcon");
        let mut last = None;
        for attempt in 1..=FALCON_ATTEMPTS {
            match self.attempt(body.clone()).await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            }
            if attempt < FALCON_ATTEMPTS {
                tokio::time::sleep(FALCON_RETRY_DELAY).await;
            }
        }
        if let Some(e) = last {
            tracing::error!(url = %self.url, error = %e, "Failed to push metrics to falcon after {FALCON_ATTEMPTS} attempts");
        }
    }

    async fn attempt(&self, body: Bytes) -> Result<(), PushError> {
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "*/*")
            .header(http::header::USER_AGENT, &self.user_agent)
            .body(Full::new(body))?;
        let send = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Drained so the pooled connection can be reused; the content is ignored.
            let mut body = response.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            if status.is_success() {
                Ok(())
            } else {
                Err(PushError::Status(status))
            }
        };
        tokio::time::timeout(FALCON_TIMEOUT, send)
            .await
            .unwrap_or(Err(PushError::Timeout(FALCON_TIMEOUT)))
    }
}

/// Config tags first in config order, then the sample's attributes; an attribute named like a
/// tag replaces the tag's value in place. No escaping, as upstream.
fn falcon_tags(tags: &[(String, String)], attributes: &[(String, String)]) -> String {
    let mut merged: Vec<(&str, &str)> =
        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (k, v) in attributes {
        match merged.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => merged.push((k, v)),
        }
    }
    let parts: Vec<String> = merged.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn tags_then_attributes_with_in_place_override() {
        let tags = pairs(&[("namespace", "ns1"), ("egress_id", "x"), ("app", "tng")]);
        let attrs = pairs(&[("egress_type", "mapping"), ("egress_id", "0")]);
        assert_eq!(
            falcon_tags(&tags, &attrs),
            "namespace=ns1,egress_id=0,app=tng,egress_type=mapping"
        );
        assert_eq!(falcon_tags(&[], &[]), "");
    }

    #[test]
    fn zero_step_falls_back_to_the_default_interval() {
        assert_eq!(interval(3), Duration::from_secs(3));
        if std::env::var_os("OTEL_METRIC_EXPORT_INTERVAL").is_none() {
            assert_eq!(interval(0), Duration::from_secs(60));
        }
    }
}
