//! `rats_tls` (both sides): the framing inside the attested TLS tunnel, and on the ingress
//! the limits of its connection pool. An entry without `ohttp` uses rats-TLS whether or not
//! the object is written.

use std::num::NonZeroU32;

use crate::error::Result;
use crate::json::Field;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RatsTls {
    /// HTTP/2 CONNECT streams on pooled TLS connections (ALPN `h2`) instead of one TLS
    /// connection per application connection (ALPN `rats-tls`). Both sides must agree.
    pub multiplex: bool,
    /// Ingress only: streams one pooled connection carries at most (unset: as many as the
    /// egress allows, `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_streams_per_connection: Option<NonZeroU32>,
    /// Ingress only: pooled connections per egress endpoint at most (unset: as many as the
    /// streams need). When every connection is full, new application connections wait.
    pub max_connections: Option<NonZeroU32>,
}

pub(crate) fn parse_rats_tls(field: &Field<'_>, ingress: bool) -> Result<RatsTls> {
    let mut obj = field.object()?;
    let multiplex = match obj.opt("multiplex") {
        Some(f) => f.bool()?,
        None => false,
    };
    let mut config = RatsTls {
        multiplex,
        ..RatsTls::default()
    };
    if !ingress {
        obj.finish(&["multiplex"])?;
        return Ok(config);
    }
    let mut limit = |key: &str| -> Result<Option<NonZeroU32>> {
        let Some(f) = obj.opt(key) else {
            return Ok(None);
        };
        let n = f.u32()?;
        let n = NonZeroU32::new(n).ok_or_else(|| f.err("must be > 0"))?;
        if !multiplex {
            return Err(f.err("requires rats_tls.multiplex: true"));
        }
        Ok(Some(n))
    };
    config.max_streams_per_connection = limit("multiplex_max_streams_per_connection")?;
    config.max_connections = limit("multiplex_max_connections")?;
    obj.finish(&[
        "multiplex",
        "multiplex_max_streams_per_connection",
        "multiplex_max_connections",
    ])?;
    Ok(config)
}
