use crate::error::Result;
use crate::json::Field;

/// A listen address. `host` is kept verbatim (upstream binds `"host:port"`), so a DNS name
/// works and an IPv6 literal needs brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

pub(crate) fn parse_endpoint(field: &Field<'_>) -> Result<Endpoint> {
    let mut obj = field.object()?;
    let host = match obj.opt("host") {
        Some(f) => {
            let host = f.string()?;
            if host.is_empty() {
                return Err(f.err("must not be empty"));
            }
            host
        }
        None => "0.0.0.0".to_owned(),
    };
    let port = obj.req("port")?.u16()?;
    obj.finish(&["host", "port"])?;
    Ok(Endpoint { host, port })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlInterface {
    pub restful: Endpoint,
}

pub(crate) fn parse_control_interface(field: &Field<'_>) -> Result<ControlInterface> {
    let mut obj = field.object()?;
    if let Some(ttrpc) = obj.opt("ttrpc") {
        return Err(
            ttrpc.err("the ttrpc control interface is not supported by this implementation")
        );
    }
    let restful = obj.opt("restful").map(|f| parse_endpoint(&f)).transpose()?;
    obj.finish(&["restful", "ttrpc"])?;
    match restful {
        Some(restful) => Ok(ControlInterface { restful }),
        None => Err(field.err("at least one control interface (`restful`) must be specified")),
    }
}
