//! An OTLP receiver decoding with the official protobuf definitions (`opentelemetry-proto`),
//! over gRPC or HTTP (protobuf or JSON, by content type, the way a collector decides).
//!
//! It runs on its own thread with its own runtime, so synchronous e2e tests and async unit
//! tests can both use it, and dropping it from inside an async test does not stop a runtime
//! in a context that forbids blocking.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::oneshot;

/// What one export request looked like on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRequest {
    /// The HTTP path, or `grpc:metrics` / `grpc:traces`.
    pub what: String,
    /// `content-type` for HTTP, `grpc-encoding` for gRPC.
    pub encoding: String,
    /// The `x-api-key` header (exporters' configured headers are checked with it).
    pub api_key: String,
}

#[derive(Default, Clone)]
struct Inbox {
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    requests: Arc<Mutex<Vec<ExportRequest>>>,
}

impl Inbox {
    fn note(&self, what: &str, encoding: String, headers: &http::HeaderMap) {
        self.requests.lock().unwrap().push(ExportRequest {
            what: what.to_owned(),
            encoding,
            api_key: header(headers, "x-api-key"),
        });
    }
}

fn header(map: &http::HeaderMap, name: &str) -> String {
    map.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A running receiver. `endpoint` is what an exporter is configured with: the gRPC base URL,
/// or the HTTP base URL to which `/…/metrics` and `/…/traces` paths are appended.
pub struct OtlpReceiver {
    inbox: Inbox,
    base: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// An OTLP/gRPC receiver (gzip accepted) on a loopback port.
    pub fn grpc() -> OtlpReceiver {
        Self::start(|inbox, listener, stop| {
            Box::pin(async move {
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                tonic::transport::Server::builder()
                    .add_service(
                        MetricsServiceServer::new(inbox.clone())
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                    )
                    .add_service(
                        TraceServiceServer::new(inbox)
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                    )
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop.await;
                    })
                    .await
                    .expect("gRPC receiver");
            })
        })
    }

    /// An OTLP/HTTP receiver: a path ending in `metrics` or `traces` is decoded as protobuf,
    /// or as JSON when the content type says `application/json`; any other path gets a 404.
    pub fn http() -> OtlpReceiver {
        Self::start(|inbox, listener, stop| {
            Box::pin(async move {
                tokio::select! {
                    _ = stop => {}
                    _ = serve_http(inbox, listener) => {}
                }
            })
        })
    }

    fn start(
        server: impl FnOnce(
                Inbox,
                tokio::net::TcpListener,
                oneshot::Receiver<()>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            + Send
            + 'static,
    ) -> OtlpReceiver {
        let inbox = Inbox::default();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = std_listener.local_addr().expect("local addr");
        let (stop_tx, stop_rx) = oneshot::channel();
        let served = inbox.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                server(served, listener, stop_rx).await;
            });
        });
        OtlpReceiver {
            inbox,
            base: format!("http://{addr}"),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.inbox.metrics.lock().unwrap().clone()
    }

    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.inbox.traces.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<ExportRequest> {
        self.inbox.requests.lock().unwrap().clone()
    }

    /// Every span received, with its attributes as sorted strings and its resource's.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for request in self.traces() {
            for rs in request.resource_spans {
                let resource = string_attrs(&rs.resource.unwrap_or_default().attributes);
                for ss in rs.scope_spans {
                    let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                    for span in ss.spans {
                        out.push(ReceivedSpan {
                            resource: resource.clone(),
                            scope: scope.clone(),
                            attrs: string_attrs(&span.attributes),
                            span,
                        });
                    }
                }
            }
        }
        out
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One received span.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub resource: Vec<(String, String)>,
    pub scope: String,
    pub attrs: Vec<(String, String)>,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        attr(&self.attrs, key)
    }
}

/// Attributes as `(key, value)` strings, sorted by key, for comparisons.
pub fn string_attrs(attrs: &[KeyValue]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = attrs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect();
    out.sort();
    out
}

/// The value of `key` in attributes from [`string_attrs`].
pub fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Lower-case hex, the way trace and span ids appear in a `traceparent`.
pub fn hex_id(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[tonic::async_trait]
impl MetricsService for Inbox {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.note("grpc:metrics", header(&headers, "grpc-encoding"), &headers);
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Inbox {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.note("grpc:traces", header(&headers, "grpc-encoding"), &headers);
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn serve_http(inbox: Inbox, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let inbox = inbox.clone();
                async move { Ok::<_, Infallible>(handle_http(&inbox, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

// An export request is one protobuf or JSON message, decoded whole, as a collector does.
#[allow(clippy::disallowed_methods)]
async fn handle_http(
    inbox: &Inbox,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let content_type = header(&headers, "content-type");
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return status(400),
    };
    inbox.note(&path, content_type.clone(), &headers);
    let json = content_type == "application/json";
    if path.ends_with("metrics") {
        let decoded = if json {
            serde_json::from_slice(&body).expect("OTLP/JSON metrics")
        } else {
            ExportMetricsServiceRequest::decode(body).expect("OTLP metrics")
        };
        inbox.metrics.lock().unwrap().push(decoded);
    } else if path.ends_with("traces") {
        let decoded = if json {
            serde_json::from_slice(&body).expect("OTLP/JSON traces")
        } else {
            ExportTraceServiceRequest::decode(body).expect("OTLP traces")
        };
        inbox.traces.lock().unwrap().push(decoded);
    } else {
        return status(404);
    }
    status(200)
}

fn status(code: u16) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .expect("response")
}
