//! The small HTTP client shared by the Attestation Service and ASR clients: hyper 1 +
//! hyper-util's pooled client, plain http or https (rustls with the system roots), optionally
//! `SO_MARK`ed sockets, a connect timeout, an overall per-request timeout and bounded bodies.

mod connector;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use connector::MarkedConnector;

/// Upper bound for any response body we read (tokens, certificate chains, evidence).
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous: an Attestation Service may fetch collateral while appraising evidence.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<MarkedConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl HttpClient {
    pub(crate) fn new(so_mark: Option<u32>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        // Missing or unreadable system roots only matter for https endpoints.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(MarkedConnector {
                so_mark,
                connect_timeout: CONNECT_TIMEOUT,
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// Sends `request` and reads the whole (bounded) response body. The error text says what
    /// went wrong without the URL (callers add it).
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, String> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            // Bounded by `Limited`, so collecting cannot grow without limit.
            #[allow(clippy::disallowed_methods)]
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the response body failed: {e}"))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| format!("no response within {:?}", self.request_timeout))?
    }
}

/// `e` and its sources, joined (hyper's top-level messages alone are too terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}
