use crate::http::body::Body;
use crate::http::body_timer::RequestBody;
use crate::http::server::ConnGuard;
use crate::transport::{AppStream, OpenError, Target};
use http::{Request, Response};
use std::sync::Arc;

pub struct RatsTlsIngress;
impl RatsTlsIngress {
    pub async fn new(
        _c: &tng_config::Ingress,
        _m: Option<u32>,
        field: &str,
    ) -> anyhow::Result<Self> {
        anyhow::bail!("{field}: rats_tls WIP")
    }
    pub async fn open(self: &Arc<Self>, _t: &Target) -> Result<StreamTunnel, OpenError> {
        Err(OpenError("wip".into()))
    }
    pub async fn request(
        self: &Arc<Self>,
        _t: &Target,
        _r: Request<RequestBody>,
    ) -> Response<Body> {
        unimplemented!()
    }
}
pub struct StreamTunnel;
impl StreamTunnel {
    pub async fn serve<S: AppStream>(self, _a: S, _g: Option<ConnGuard>) {}
}
