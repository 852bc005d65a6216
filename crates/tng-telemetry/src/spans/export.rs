//! The span queue and the task that empties it: every `schedule delay` (5 s, or
//! `OTEL_BSP_SCHEDULE_DELAY` milliseconds, as the SDK's batch processor), when a full batch is
//! waiting, and once more at shutdown, each batch going to every configured exporter.
//!
//! Closing a span only appends it under an uncontended lock; nothing wakes the exporter until a
//! batch is full, so the data path never pays a thread or task wake-up per span.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tng_config::{OtlpProtocol, TraceExporter};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::encode::{self, Origin};
use super::record::SpanRecord;
use crate::error::TelemetryError;
use crate::otlp::{check_http, header_map, is_https, EXPORT_TIMEOUT};

/// The SDK's batch defaults, which upstream runs with.
const MAX_QUEUE: usize = 2048;
const MAX_BATCH: usize = 512;
const DEFAULT_DELAY: Duration = Duration::from_secs(5);
const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

struct Shared {
    spans: Mutex<Vec<SpanRecord>>,
    batch_ready: Notify,
    dropped: AtomicU64,
}

/// Where closed spans wait for the exporter.
#[derive(Clone)]
pub(crate) struct Queue(Arc<Shared>);

impl Queue {
    pub(crate) fn push(&self, span: SpanRecord) {
        let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
        if spans.len() >= MAX_QUEUE {
            drop(spans);
            self.0.dropped.fetch_add(1, Relaxed);
            return;
        }
        spans.push(span);
        let full = spans.len() == MAX_BATCH;
        drop(spans);
        if full {
            self.0.batch_ready.notify_one();
        }
    }

    pub(crate) fn take(&self) -> Vec<SpanRecord> {
        let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *spans)
    }
}

fn schedule_delay() -> Duration {
    std::env::var("OTEL_BSP_SCHEDULE_DELAY")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_DELAY, Duration::from_millis)
}

/// The running exporter task.
pub(crate) struct SpanExporter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SpanExporter {
    /// Builds every exporter of `exporters` and starts the task. Must be called inside a tokio
    /// runtime.
    pub(crate) fn spawn(
        exporters: &[TraceExporter],
        origin: Origin,
    ) -> Result<(SpanExporter, Queue), TelemetryError> {
        let sinks = exporters
            .iter()
            .map(Sink::new)
            .collect::<Result<Vec<_>, _>>()?;
        let queue = Queue(Arc::new(Shared {
            spans: Mutex::new(Vec::new()),
            batch_ready: Notify::new(),
            dropped: AtomicU64::new(0),
        }));
        let (stop, mut stopped) = watch::channel(false);
        let worker = queue.clone();
        let every = schedule_delay();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last = tokio::select! {
                    _ = ticks.tick() => false,
                    () = worker.0.batch_ready.notified() => false,
                    _ = stopped.changed() => true,
                };
                let spans = worker.take();
                for batch in spans.chunks(MAX_BATCH) {
                    for sink in &sinks {
                        sink.export(&origin, batch).await;
                    }
                }
                let dropped = worker.0.dropped.swap(0, Relaxed);
                if dropped > 0 {
                    tracing::warn!(target: "tng::telemetry", dropped, "span queue full; spans dropped");
                }
                if last {
                    break;
                }
            }
        });
        Ok((SpanExporter { stop, task }, queue))
    }

    /// Exports every span closed so far and stops.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        if self.task.await.is_err() {
            tracing::error!(target: "tng::telemetry", "the span exporter panicked");
        }
    }
}

enum Sink {
    Stdout,
    Http {
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        uri: http::Uri,
        json: bool,
        headers: http::HeaderMap,
    },
    Grpc {
        grpc: tonic::client::Grpc<Channel>,
        metadata: tonic::metadata::MetadataMap,
    },
}

impl Sink {
    fn new(exporter: &TraceExporter) -> Result<Sink, TelemetryError> {
        let config = match exporter {
            TraceExporter::Stdout => return Ok(Sink::Stdout),
            TraceExporter::Otlp(config) => config,
        };
        let headers = header_map(config)?;
        fn invalid(endpoint: &str) -> impl FnOnce(tonic::transport::Error) -> TelemetryError + '_ {
            move |e| TelemetryError::new(format!("invalid OTLP trace endpoint {endpoint:?}"), e)
        }
        if config.protocol == OtlpProtocol::Grpc {
            let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
                .map_err(invalid(&config.endpoint))?
                .timeout(EXPORT_TIMEOUT)
                .connect_timeout(EXPORT_TIMEOUT);
            if is_https(&config.endpoint) {
                endpoint = endpoint
                    .tls_config(ClientTlsConfig::new().with_native_roots())
                    .map_err(invalid(&config.endpoint))?;
            }
            let grpc = tonic::client::Grpc::new(endpoint.connect_lazy())
                .send_compressed(CompressionEncoding::Gzip);
            return Ok(Sink::Grpc {
                grpc,
                metadata: tonic::metadata::MetadataMap::from_headers(headers),
            });
        }
        check_http(config)?;
        let uri = config.endpoint.parse::<http::Uri>().map_err(|e| {
            TelemetryError::new(
                format!("invalid OTLP trace endpoint {:?}", config.endpoint),
                e,
            )
        })?;
        Ok(Sink::Http {
            client: Box::new(Client::builder(TokioExecutor::new()).build_http()),
            uri,
            json: config.protocol == OtlpProtocol::HttpJson,
            headers,
        })
    }

    async fn export(&self, origin: &Origin, spans: &[SpanRecord]) {
        let result = match self {
            Sink::Stdout => {
                let mut out = Vec::with_capacity(spans.len() * 512);
                for span in spans {
                    let _ = serde_json::to_writer(&mut out, &encode::span_json(span));
                    out.push(b'\n');
                }
                // The process's real stdout, as upstream's stdout exporter prints; off the
                // runtime's workers, so a slow reader of stdout stalls only this task.
                tokio::task::spawn_blocking(move || std::io::stdout().lock().write_all(&out))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|written| written.map_err(|e| e.to_string()))
            }
            Sink::Http {
                client,
                uri,
                json,
                headers,
            } => {
                let (body, content_type) = if *json {
                    (encode::json(origin, spans), "application/json")
                } else {
                    (encode::protobuf(origin, spans), "application/x-protobuf")
                };
                post(client, uri, headers, content_type, body).await
            }
            Sink::Grpc { grpc, metadata } => {
                let body = Bytes::from(encode::protobuf(origin, spans));
                unary(grpc.clone(), metadata.clone(), body).await
            }
        };
        if let Err(error) = result {
            tracing::warn!(target: "tng::telemetry", spans = spans.len(), %error, "trace export failed");
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = http::Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    let send = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Drained so the pooled connection can be reused; the content is ignored.
        let mut body = response.into_body();
        while let Some(Ok(_)) = body.frame().await {}
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {status}"))
        }
    };
    tokio::time::timeout(EXPORT_TIMEOUT, send)
        .await
        .map_err(|_| format!("no answer within {EXPORT_TIMEOUT:?}"))?
}

async fn unary(
    mut grpc: tonic::client::Grpc<Channel>,
    metadata: tonic::metadata::MetadataMap,
    body: Bytes,
) -> Result<(), String> {
    grpc.ready().await.map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(body);
    *request.metadata_mut() = metadata;
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static(GRPC_PATH),
        Encoded,
    )
    .await
    .map(drop)
    .map_err(|status| status.to_string())
}

/// A gRPC codec for a message that is already protobuf-encoded; the response
/// (`ExportTraceServiceResponse`) is read and ignored.
#[derive(Clone, Copy, Default)]
struct Encoded;

impl Codec for Encoded {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Encoded {
        Encoded
    }

    fn decoder(&mut self) -> Encoded {
        Encoded
    }
}

impl Encoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Encoded {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
