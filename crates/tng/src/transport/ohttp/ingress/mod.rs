//! The OHTTP ingress: the client in front of the application. It takes the application's
//! plain HTTP requests, seals each one to the egress's current key and unseals the responses.
//! [`pipeline`] holds the per-request lifecycle; [`key_cache`] the egress keys (and their
//! attestation) per egress; [`replay`] keeps a small copy of request bodies for re-sends.

pub mod key_cache;
pub mod pipeline;
pub mod replay;

use std::sync::Arc;

use anyhow::Context;
use http::{Request, Response};
use tng_config::{Ingress, IngressOhttp, PathDefault};
use tng_ohttp::passthrough::HeaderPassthrough;
use tng_ohttp::path_rewrite::{self, PathRewriter};

use crate::http::body::Body;
use crate::http::body_timer::RequestBody;
use crate::http::client::{self, ConnectOptions, HttpClient};
use crate::http::server::ConnGuard;
use crate::transport::{AppStream, Target};

/// Shared by every connection of one ingress.
pub struct OhttpIngress {
    pub id: usize,
    pub rewriter: PathRewriter,
    pub scheme: &'static str,
    pub client: HttpClient,
    pub keys: Arc<key_cache::KeyCache>,
    pub request_passthrough: HeaderPassthrough,
    pub response_passthrough: HeaderPassthrough,
    pub limits: Arc<tng_config::Limits>,
    pub metrics: tng_telemetry::InstanceMetrics,
    /// `ohttp.send_client_ip`: seal the application's address into every request.
    pub send_client_ip: bool,
}

impl OhttpIngress {
    /// `so_mark` marks every outer connection (netfilter capture lets marked packets pass).
    pub async fn new(
        config: &Ingress,
        ohttp: &IngressOhttp,
        so_mark: Option<u32>,
        metrics: tng_telemetry::InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let id = config.id;
        let rules: Vec<(String, String)> = ohttp
            .path_rewrites
            .iter()
            .map(|r| (r.match_regex.clone(), r.substitution.clone()))
            .collect();
        let default = match ohttp.path_default {
            PathDefault::Root => path_rewrite::PathDefault::Root,
            PathDefault::Original => path_rewrite::PathDefault::Original,
        };
        let rewriter = PathRewriter::new(&rules, default).map_err(|e| {
            anyhow::anyhow!(
                "add_ingress[{id}].ohttp.path_rewrites[{}]: {}",
                e.index,
                e.message
            )
        })?;
        let tls = if ohttp.tls {
            Some(
                client::tls_config(&ohttp.tls_ca_certs)
                    .with_context(|| format!("add_ingress[{id}].ohttp.tls_ca_certs"))?,
            )
        } else {
            None
        };
        let http_client = client::build_limited(
            ConnectOptions {
                so_mark,
                tls: tls.clone(),
            },
            &config.limits,
        );
        let verifier = match &config.ra.verify {
            Some(verify) => Some(
                crate::attestation::verifier(&format!("add_ingress[{id}]"), verify, so_mark)
                    .await?,
            ),
            None => None,
        };
        let attester = config
            .ra
            .attest
            .as_ref()
            .map(|attest| {
                crate::attestation::attester(&format!("add_ingress[{id}]"), attest, so_mark)
            })
            .transpose()?;
        let keys = Arc::new(key_cache::KeyCache::new(
            http_client.clone(),
            verifier,
            attester,
            config.limits.response_timeout,
            metrics.clone(),
        ));
        Ok(Self {
            id,
            rewriter,
            scheme: if tls.is_some() { "https" } else { "http" },
            client: http_client,
            keys,
            request_passthrough: crate::http::headers::passthrough(
                &ohttp.header_passthrough.request_headers,
            ),
            response_passthrough: crate::http::headers::passthrough(
                &ohttp.header_passthrough.response_headers,
            ),
            limits: Arc::new(config.limits.clone()),
            metrics,
            send_client_ip: ohttp.send_client_ip,
        })
    }

    pub fn verifies(&self) -> bool {
        self.keys.verifies()
    }

    /// Nothing to prepare per connection: keys are fetched (and attested) per egress, on the
    /// first request that needs them.
    pub fn open(self: &Arc<Self>, target: &Target) -> HttpTunnel {
        HttpTunnel {
            ingress: self.clone(),
            authority: target.to_string(),
        }
    }

    pub async fn request(
        self: &Arc<Self>,
        target: &Target,
        client: Option<std::net::IpAddr>,
        req: Request<RequestBody>,
    ) -> Response<Body> {
        pipeline::handle(self.clone(), target.to_string(), client, req).await
    }
}

/// An application connection carrying HTTP to one destination: every request on it goes
/// through the [`pipeline`].
pub struct HttpTunnel {
    ingress: Arc<OhttpIngress>,
    authority: String,
}

impl HttpTunnel {
    pub async fn serve<S: AppStream>(self, app: S, guard: Option<ConnGuard>) {
        let (ingress, authority) = (self.ingress, self.authority);
        let client = guard.as_ref().and_then(ConnGuard::peer).map(|p| p.ip());
        crate::http::server::serve_connection(app, guard, move |req| {
            pipeline::handle(ingress.clone(), authority.clone(), client, req)
        })
        .await
    }
}
