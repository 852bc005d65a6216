//! The RESTful control interface: `/livez`, `/readyz`, `/metrics` (Prometheus text
//! exposition), `/status/...`.

mod readiness;
mod status;

pub use readiness::Readiness;
pub use status::Status;

use std::sync::Arc;

use anyhow::Context;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tng_telemetry::Telemetry;
use tokio::net::TcpListener;
use tracing::info;

use crate::http::body::{json_response, text_response, Body};
use crate::http::body_timer::RequestBody;
use crate::http::SERVER_HEADER;
use crate::shutdown::Shutdown;

pub struct ControlInterface {
    listener: TcpListener,
    status: Status,
    readiness: Readiness,
    telemetry: Arc<Telemetry>,
}

impl ControlInterface {
    pub async fn bind(
        config: &tng_config::ControlInterface,
        status: Status,
        readiness: Readiness,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<Self> {
        let addr = format!("{}:{}", config.restful.host, config.restful.port);
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("control_interface.restful: cannot listen on {addr}"))?;
        Ok(Self {
            listener,
            status,
            readiness,
            telemetry,
        })
    }

    pub async fn serve(self, shutdown: Shutdown) {
        let local = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        info!(%local, "control interface listening");
        let (status, readiness, telemetry) = (self.status, self.readiness, self.telemetry);
        crate::http::server::accept_loop(
            self.listener,
            shutdown,
            "control".into(),
            move |stream, _, watcher| {
                let (status, readiness) = (status.clone(), readiness.clone());
                let telemetry = telemetry.clone();
                crate::http::server::serve_connection(stream, Some(watcher), move |req| {
                    let response = route(&status, &readiness, &telemetry, &req);
                    async move { response }
                })
            },
        )
        .await;
    }
}

fn route(
    status: &Status,
    readiness: &Readiness,
    telemetry: &Telemetry,
    req: &Request<RequestBody>,
) -> Response<Body> {
    let path = req.uri().path();
    let mut response = if req.method() != Method::GET {
        json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method not allowed"}"#.into(),
        )
    } else if path == "/livez" {
        text_response(StatusCode::OK, "ok")
    } else if path == "/readyz" {
        if readiness.is_ready() {
            text_response(StatusCode::OK, "ok")
        } else {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "not ok")
        }
    } else if path == "/metrics" {
        let mut response = Response::new(crate::http::body::full(telemetry.prometheus_text()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(tng_telemetry::PROMETHEUS_CONTENT_TYPE),
        );
        response
    } else if let Some(rest) = path.strip_prefix("/status/") {
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        match status.lookup(&segments) {
            Some(value) => json_response(StatusCode::OK, value.to_string()),
            None => not_found(),
        }
    } else {
        not_found()
    };
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    response
}

fn not_found() -> Response<Body> {
    json_response(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into())
}
