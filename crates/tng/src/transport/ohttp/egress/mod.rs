//! The OHTTP egress: the gateway in front of the service. It answers key-config requests,
//! opens tunnel requests, forwards them in plaintext to the service and seals the responses.
//!
//! Request lifecycle (one function per phase, in this order):
//! 1. [`router::route`] — CORS preflight, then dispatch on `x-tng-ohttp-api`.
//! 2. [`key_config::serve`] or [`tunnel::serve`] — the API itself.
//! 3. [`tunnel`] internally: `read_metadata` → `select_key` → `open_request` →
//!    `forward` (to the service) → `seal_response`.
//! 4. [`router::response_filter`] — `server` header and CORS headers on every answer.

pub mod background_check;
pub mod client_ip;
pub mod cors;
pub mod freshness;
pub mod key_config;
pub mod key_dir;
pub mod keys;
pub mod observation;
pub mod router;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tng_config::{Egress, EgressOhttp};
use tng_ohttp::passthrough::HeaderPassthrough;
use tokio::sync::watch;

use crate::http::client::{self, ConnectOptions, HttpClient};
use crate::http::server::ConnGuard;
use crate::shutdown::Shutdown;
use crate::transport::AppStream;

/// Everything a request handler needs, shared by all connections of one egress.
pub struct OhttpEgress {
    pub id: usize,
    pub keys: Arc<keys::KeyManager>,
    /// Present when this egress proves its TEE (`attest`) in key-config answers.
    pub attester: Option<Arc<tng_attest::Attester>>,
    /// Present when this egress requires attested ingresses (`verify`).
    pub verifier: Option<Arc<tng_attest::Verifier>>,
    /// The last passport answer, reused for `attest.refresh_interval` while the advertised key
    /// config is unchanged (every client may receive the same token).
    pub passport_cache: std::sync::Mutex<Option<key_config::CachedPassport>>,
    /// Bounds the evidence produced for key-config requests.
    pub evidence: key_config::EvidenceGate,
    pub backend: HttpClient,
    pub cors: Option<cors::CorsPolicy>,
    pub request_passthrough: HeaderPassthrough,
    pub response_passthrough: HeaderPassthrough,
    pub limits: Arc<tng_config::Limits>,
    /// Present unless `limits.replay_window` is 0.
    pub replay: Option<freshness::ReplayGuard>,
    /// One counted unit per tunnel request handed to the service.
    pub metrics: tng_telemetry::InstanceMetrics,
    /// The `server` header of our own answers (`add_egress[].server_header`).
    pub server_header: Option<http::HeaderValue>,
    /// What the service learns of its client's address.
    pub client_ip: client_ip::ClientIpPolicy,
}

impl OhttpEgress {
    /// Starts the key manager (a `peer_shared` node joins its cluster here) and builds the
    /// attester and verifier. `so_mark` marks every connection to the service and to the
    /// Attestation Service, so the capture rules let them through.
    pub async fn new(
        config: &Egress,
        ohttp: &EgressOhttp,
        so_mark: Option<u32>,
        shutdown: &Shutdown,
        metrics: tng_telemetry::InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let id = config.id;
        let cors = ohttp
            .cors
            .as_ref()
            .map(cors::CorsPolicy::new)
            .transpose()
            .with_context(|| format!("add_egress[{id}].ohttp.cors"))?;
        let key_field = format!("add_egress[{id}].ohttp.key");
        let keys = keys::KeyManager::start(&ohttp.key, &key_field, so_mark, shutdown.clone())
            .await
            .with_context(|| key_field.clone())?;
        keys.observe(metrics.clone(), shutdown.clone());
        let attester = config
            .ra
            .attest
            .as_ref()
            .map(|attest| {
                crate::attestation::attester(&format!("add_egress[{id}]"), attest, so_mark)
            })
            .transpose()?;
        let verifier = match &config.ra.verify {
            Some(verify) => Some(
                crate::attestation::verifier(&format!("add_egress[{id}]"), verify, so_mark).await?,
            ),
            None => None,
        };
        Ok(Self {
            id,
            keys,
            attester,
            verifier,
            passport_cache: std::sync::Mutex::new(None),
            evidence: key_config::EvidenceGate::default(),
            backend: client::build_limited(ConnectOptions { so_mark, tls: None }, &config.limits),
            cors,
            request_passthrough: crate::http::headers::passthrough(
                &ohttp.header_passthrough.request_headers,
            ),
            response_passthrough: crate::http::headers::passthrough(
                &ohttp.header_passthrough.response_headers,
            ),
            limits: Arc::new(config.limits.clone()),
            replay: config.limits.replay_window.map(|window| {
                freshness::ReplayGuard::with_cap(window, config.limits.replay_capacity)
            }),
            server_header: match config.server_header {
                tng_config::ServerHeader::Name => {
                    Some(http::HeaderValue::from_static(crate::http::SERVER_HEADER))
                }
                tng_config::ServerHeader::NameVersion => Some(http::HeaderValue::from_static(
                    crate::http::SERVER_HEADER_WITH_VERSION,
                )),
                tng_config::ServerHeader::Off => None,
            },
            client_ip: client_ip::ClientIpPolicy {
                forward: ohttp.forward_client_ip,
                trust: ohttp.trust_ingress_client_ip.unwrap_or_default(),
            },
            metrics,
        })
    }

    /// Serves HTTP on a connection from the outer leg: key-config fetches and sealed requests
    /// for `upstream`.
    pub async fn serve<S: AppStream>(
        self: Arc<Self>,
        stream: S,
        upstream: SocketAddr,
        guard: ConnGuard,
    ) {
        let source = guard.peer().map(|p| p.ip());
        crate::http::server::serve_connection(stream, Some(guard), move |req| {
            let egress = self.clone();
            async move { router::route(&egress, upstream, source, req).await }
        })
        .await
    }

    /// A `peer_shared` node may serve only while it holds the cluster's keys.
    pub fn serving(&self) -> Option<watch::Receiver<bool>> {
        self.keys.serving()
    }
}
