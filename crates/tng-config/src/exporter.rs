//! What the `metric` and `trace` exporters share: the `type` tag, the OTLP connection fields and
//! upstream's lax key policy inside an exporter object.

use crate::error::{ConfigError, Result};
use crate::json::{child_path, Field, Obj};

/// The wire encoding of an OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// An OTLP destination. For HTTP the endpoint is the full URL requests are posted to, exactly as
/// written (upstream appends no `/v1/metrics` or `/v1/traces`); for gRPC it is the channel URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExporter {
    pub protocol: OtlpProtocol,
    pub endpoint: String,
    /// Sent as HTTP headers or gRPC metadata; names are valid and lower-cased, values valid.
    pub headers: Vec<(String, String)>,
}

/// Reads `type`. Upstream spells the OTLP variant `oltp`; the documented `otlp` is accepted too
/// and means the same.
pub(crate) fn exporter_type<'a>(
    obj: &mut Obj<'a>,
    variants: &[&str],
) -> Result<(&'a str, Field<'a>)> {
    let field = obj.req("type")?;
    let value = field.str()?;
    let value = if value == "otlp" { "oltp" } else { value };
    if !variants.contains(&value) {
        let mut list: Vec<String> = variants.iter().map(|v| format!("`{v}`")).collect();
        list.push("`otlp`".to_owned());
        return Err(field.err(format!(
            "unknown variant `{}`, expected one of {}",
            field.str()?,
            list.join(", ")
        )));
    }
    Ok((value, field))
}

/// `protocol`, `endpoint` and `headers`, checked now so a typo fails at startup rather than at
/// the first export.
pub(crate) fn parse_otlp(obj: &mut Obj<'_>) -> Result<OtlpExporter> {
    let protocol_field = obj.req("protocol")?;
    let protocol = match protocol_field.str()? {
        "grpc" => OtlpProtocol::Grpc,
        "http/protobuf" => OtlpProtocol::HttpProtobuf,
        "http/json" => OtlpProtocol::HttpJson,
        other => {
            return Err(protocol_field.err(format!(
                "unknown variant `{other}`, expected one of `http/protobuf`, `http/json`, `grpc`"
            )))
        }
    };
    let endpoint_field = obj.req("endpoint")?;
    let endpoint = endpoint_field.string()?;
    check_url(&endpoint_field, &endpoint, &["http", "https"])?;
    let headers = match obj.opt("headers") {
        Some(f) => f
            .string_pairs()?
            .into_iter()
            .map(|(name, value)| {
                let err = |m: &str| ConfigError::new(child_path(&f.path, &name), m);
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(err("invalid HTTP header name"));
                }
                if http::HeaderValue::from_str(&value).is_err() {
                    return Err(err("invalid HTTP header value"));
                }
                // gRPC metadata keys must be lower case; HTTP does not care.
                Ok((name.to_ascii_lowercase(), value))
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    Ok(OtlpExporter {
        protocol,
        endpoint,
        headers,
    })
}

/// An absolute URL with one of `schemes` and a host.
pub(crate) fn check_url(field: &Field<'_>, url: &str, schemes: &[&str]) -> Result<()> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| field.err(format!("invalid URL {url:?}: {e}")))?;
    let scheme_ok = uri.scheme_str().is_some_and(|s| {
        schemes
            .iter()
            .any(|allowed| s.eq_ignore_ascii_case(allowed))
    });
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        let list: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(field.err(format!(
            "invalid URL {url:?}: expected an absolute {} URL with a host",
            list.join(" or ")
        )));
    }
    Ok(())
}

/// Upstream ignores unknown keys inside an exporter. A key another exporter type reads (a `step`
/// copied onto a trace exporter, say) is accepted with a warning so such configs still load; any
/// other key is an error naming it.
pub(crate) fn finish_exporter(
    mut obj: Obj<'_>,
    kind: &str,
    own: &[&str],
    others: &[&str],
    warnings: &mut Vec<String>,
) -> Result<()> {
    let stray: Vec<&str> = obj
        .keys()
        .filter(|k| !own.contains(k) && others.contains(k))
        .collect();
    for key in stray {
        if let Some(f) = obj.field(key) {
            warnings.push(format!(
                "{}: not read by the `{kind}` exporter; ignored",
                f.path
            ));
        }
    }
    obj.finish(own)
}

/// `step`: whole seconds between exports.
pub(crate) fn step(obj: &mut Obj<'_>, default: Option<u64>) -> Result<u64> {
    match (obj.field("step"), default) {
        (Some(f), _) => f.u64(),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(ConfigError::new(child_path(&obj.path, "step"), "required")),
    }
}
