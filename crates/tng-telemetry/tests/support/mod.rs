//! Small real HTTP servers and clients for the exporter tests.
#![allow(dead_code)] // each test binary uses a different part

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tng_telemetry::{Endpoints, InstanceLabels, InstanceMetrics, Telemetry, Transport};
use tokio::net::TcpListener;

pub async fn read_body(mut body: Incoming) -> Bytes {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            out.extend_from_slice(&data);
        }
    }
    out.freeze()
}

/// One received request, body read.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An HTTP/1.1 server on a loopback port answering every request with `handler`.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = Arc::clone(&handler);
                    async move {
                        let (parts, body) = req.into_parts();
                        let received = Received {
                            method: parts.method,
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body: read_body(body).await,
                        };
                        Ok::<_, Infallible>(handler(received).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

pub async fn get(url: &str) -> (http::StatusCode, http::HeaderMap, String) {
    try_get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub async fn try_get(
    url: &str,
) -> Result<(http::StatusCode, http::HeaderMap, String), hyper_util::client::legacy::Error> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.get(url.parse().expect("url")).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_body(response.into_body()).await;
    Ok((
        status,
        headers,
        String::from_utf8(body.to_vec()).expect("utf-8 body"),
    ))
}

pub fn response(status: u16, body: &str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("response")
}

/// Two ingress and two egress entries with distinct upstream labels.
pub fn four_instances(t: &Telemetry) -> [InstanceMetrics; 4] {
    [
        t.ingress(
            0,
            InstanceLabels {
                mode: "mapping".into(),
                transport: Transport::Ohttp,
                endpoints: Endpoints::InOut {
                    listen: "127.0.0.1:30000".into(),
                    upstream: "127.0.0.1:30001".into(),
                },
            },
        ),
        t.ingress(
            1,
            InstanceLabels {
                mode: "http_proxy".into(),
                transport: Transport::RatsTls,
                endpoints: Endpoints::ProxyListen("0.0.0.0:41000".into()),
            },
        ),
        t.egress(
            0,
            InstanceLabels {
                mode: "mapping".into(),
                transport: Transport::Ohttp,
                endpoints: Endpoints::InOut {
                    listen: "127.0.0.1:30001".into(),
                    upstream: "127.0.0.1:30080".into(),
                },
            },
        ),
        t.egress(
            1,
            InstanceLabels {
                mode: "netfilter".into(),
                transport: Transport::RatsTls,
                endpoints: Endpoints::ListenPort(40000),
            },
        ),
    ]
}

/// Upstream's attribute sets of [`four_instances`], sorted by key (attribute order is not part
/// of the contract).
pub fn four_attribute_sets() -> Vec<Vec<(String, String)>> {
    let set = |pairs: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        v.sort();
        v
    };
    vec![
        set(&[
            ("ingress_type", "mapping"),
            ("ingress_id", "0"),
            ("ingress_in", "127.0.0.1:30000"),
            ("ingress_out", "127.0.0.1:30001"),
        ]),
        set(&[
            ("ingress_type", "http_proxy"),
            ("ingress_id", "1"),
            ("ingress_proxy_listen", "0.0.0.0:41000"),
        ]),
        set(&[
            ("egress_type", "mapping"),
            ("egress_id", "0"),
            ("egress_in", "127.0.0.1:30001"),
            ("egress_out", "127.0.0.1:30080"),
        ]),
        set(&[
            ("egress_type", "netfilter"),
            ("egress_id", "1"),
            ("egress_listen_port", "40000"),
        ]),
    ]
}

/// Drives distinct values into each instance: instance `i` gets `i + 1` finished connections,
/// one failed, one still open, `100 * (i + 1)` bytes out and `10 * (i + 1)` in.
/// Returns the guards of the open connections (keep them alive).
pub fn drive(instances: &[InstanceMetrics]) -> Vec<tng_telemetry::ConnGuard> {
    let mut open = Vec::new();
    for (i, m) in instances.iter().enumerate() {
        let n = i as u64 + 1;
        for k in 0..n {
            let mut conn = m.connection();
            if k == 0 {
                conn.failed();
            }
            conn.tx(100);
            conn.rx(10);
        }
        open.push(m.connection());
    }
    open
}

/// The values [`drive`] produces for instance `i`, per upstream instrument name.
pub fn driven_value(name: &str, i: usize) -> i64 {
    let n = i as i64 + 1;
    match name {
        "cx_total" => n + 1,
        "cx_active" => 1,
        "cx_failed" => 1,
        "tx_bytes_total" => 100 * n,
        "rx_bytes_total" => 10 * n,
        other => panic!("no such instrument {other}"),
    }
}
