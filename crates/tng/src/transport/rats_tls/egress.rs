use crate::http::server::ConnGuard;
use crate::shutdown::Shutdown;
use crate::transport::AppStream;
use std::net::SocketAddr;
use std::sync::Arc;
pub struct RatsTlsEgress;
impl RatsTlsEgress {
    pub async fn new(
        _c: &tng_config::Egress,
        _m: Option<u32>,
        field: &str,
        _s: &Shutdown,
    ) -> anyhow::Result<Self> {
        anyhow::bail!("{field}: rats_tls WIP")
    }
    pub async fn serve<S: AppStream>(self: Arc<Self>, _s: S, _u: SocketAddr, _g: ConnGuard) {}
}
