//! CORS for browser clients talking to the egress directly (egress `ohttp.cors`).

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::http::body::{empty, Body};

pub struct CorsPolicy {
    origins: Option<Vec<HeaderValue>>,
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
}

/// `None` means "any" (the list contained `*`).
fn list(values: &[String]) -> Option<Vec<String>> {
    if values.iter().any(|v| v == "*") {
        None
    } else {
        Some(values.to_vec())
    }
}

fn joined(values: Option<Vec<String>>) -> anyhow::Result<Option<HeaderValue>> {
    values
        .map(|v| HeaderValue::from_str(&v.join(", ")).map_err(Into::into))
        .transpose()
}

impl CorsPolicy {
    pub fn new(config: &tng_config::Cors) -> anyhow::Result<Self> {
        let origins = list(&config.allow_origins)
            .map(|v| {
                v.iter()
                    .map(|o| HeaderValue::from_str(o))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Self {
            origins,
            methods: joined(list(&config.allow_methods))?,
            headers: joined(list(&config.allow_headers))?,
            expose: joined(list(&config.expose_headers))?,
            credentials: config.allow_credentials,
        })
    }

    pub fn is_preflight<B>(req: &Request<B>) -> bool {
        req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    fn allowed_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match (&self.origins, origin) {
            (None, _) if !self.credentials => Some(HeaderValue::from_static("*")),
            (None, Some(origin)) => Some(origin.clone()),
            (Some(list), Some(origin)) if list.contains(origin) => Some(origin.clone()),
            _ => None,
        }
    }

    pub fn preflight<B>(&self, req: &Request<B>) -> Response<Body> {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::OK;
        let h = response.headers_mut();
        h.insert(
            header::VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        let Some(origin) = self.allowed_origin(req.headers().get(header::ORIGIN)) else {
            return response;
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let echo = |name: HeaderName| req.headers().get(name).cloned();
        if let Some(methods) = self
            .methods
            .clone()
            .or_else(|| echo(header::ACCESS_CONTROL_REQUEST_METHOD))
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        if let Some(headers) = self
            .headers
            .clone()
            .or_else(|| echo(header::ACCESS_CONTROL_REQUEST_HEADERS))
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, headers);
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        response
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut Response<Body>) {
        let Some(origin) = self.allowed_origin(origin) else {
            return;
        };
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(expose) = &self.expose {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}
