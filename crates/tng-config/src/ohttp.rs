use std::path::{Path, PathBuf};

use regex::Regex;

use crate::client_addr::{parse_trust, TrustIngressClientIp};
use crate::cors::{parse_cors, Cors};
use crate::error::Result;
use crate::json::{compile_regex, Field, Json};
use crate::key::{parse_key, KeySource, DEFAULT_ROTATION_INTERVAL};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressOhttp {
    pub path_rewrites: Vec<PathRewrite>,
    pub path_default: PathDefault,
    pub header_passthrough: HeaderPassthrough,
    pub tls: bool,
    /// Every file was read and holds at least one PEM certificate.
    pub tls_ca_certs: Vec<PathBuf>,
    /// Our extension: the application's address travels sealed in every request, for an
    /// egress that trusts it (`trust_ingress_client_ip`).
    pub send_client_ip: bool,
}

/// Upstream anchors `match_regex` as `^(?:...)$` and turns `\N` into `${N}` when applying it;
/// both are left to the rewrite code, this only guarantees the pattern compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRewrite {
    pub match_regex: String,
    pub substitution: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathDefault {
    Root,
    Original,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPassthrough {
    pub request_headers: HeaderList,
    pub response_headers: HeaderList,
}

impl Default for HeaderPassthrough {
    fn default() -> Self {
        HeaderPassthrough {
            request_headers: HeaderList::Names(Vec::new()),
            response_headers: HeaderList::Names(Vec::new()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderList {
    All,
    Names(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressOhttp {
    pub key: KeySource,
    /// `None` selects the CORS fallback behaviour.
    pub cors: Option<Cors>,
    pub header_passthrough: HeaderPassthrough,
    /// `X-Real-IP` / `X-Forwarded-For` towards the service (upstream's default: on).
    pub forward_client_ip: bool,
    /// `None`: not written, which means [`TrustIngressClientIp::Attested`].
    pub trust_ingress_client_ip: Option<TrustIngressClientIp>,
    /// Our extension: the listener speaks HTTPS with this certificate.
    pub tls: Option<ServerTls>,
}

/// `add_egress[].ohttp.tls`: both files were readable PEM when the configuration was read;
/// they are read again whenever they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub(crate) fn parse_ingress_ohttp(
    field: &Field<'_>,
    warnings: &mut Vec<String>,
) -> Result<IngressOhttp> {
    let mut obj = field.object()?;
    let path_rewrites = match obj.field("path_rewrites") {
        Some(f) => f
            .array()?
            .iter()
            .map(parse_path_rewrite)
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let path_default = match obj.field("path_default") {
        None => PathDefault::Root,
        Some(f) => match f.str()? {
            "root" => PathDefault::Root,
            "original" => PathDefault::Original,
            other => {
                return Err(f.err(format!(
                    "unknown variant `{other}`, expected `root` or `original`"
                )))
            }
        },
    };
    let header_passthrough = parse_header_passthrough(obj.opt("header_passthrough"), warnings)?;
    let tls = obj
        .opt("tls")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    let mut tls_ca_certs = Vec::new();
    let certs_field = obj.field("tls_ca_certs");
    if let Some(f) = &certs_field {
        for item in f.array()? {
            let path = PathBuf::from(item.string()?);
            check_pem_bundle(&path, "TLS CA certificate file").map_err(|m| item.err(m))?;
            tls_ca_certs.push(path);
        }
    }
    let send_client_ip = obj
        .opt("send_client_ip")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    obj.finish(&[
        "path_rewrites",
        "path_default",
        "header_passthrough",
        "tls",
        "tls_ca_certs",
        "send_client_ip",
    ])?;
    if let (Some(f), false, false) = (&certs_field, tls_ca_certs.is_empty(), tls) {
        warnings.push(format!("{}: ignored because `tls` is not true", f.path));
    }
    Ok(IngressOhttp {
        path_rewrites,
        path_default,
        header_passthrough,
        tls,
        tls_ca_certs,
        send_client_ip,
    })
}

fn parse_path_rewrite(field: &Field<'_>) -> Result<PathRewrite> {
    let mut obj = field.object()?;
    let regex_field = obj.req("match_regex")?;
    compile_regex(&regex_field)?;
    let substitution = obj.req("substitution")?.string()?;
    obj.finish(&["match_regex", "substitution"])?;
    Ok(PathRewrite {
        match_regex: regex_field.string()?,
        substitution,
    })
}

/// The certificates are loaded again by whoever builds the TLS client; reading them here makes a
/// broken bundle a configuration error instead of a runtime surprise.
fn check_pem_bundle(path: &Path, what: &str) -> std::result::Result<(), String> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    let mut reader = data.as_slice();
    let mut count = 0usize;
    for cert in rustls_pemfile::certs(&mut reader) {
        cert.map_err(|e| format!("invalid PEM certificate in {shown}: {e}"))?;
        count += 1;
    }
    if count == 0 {
        return Err(format!("no PEM certificate in {shown}"));
    }
    Ok(())
}

fn parse_header_passthrough(
    field: Option<Field<'_>>,
    warnings: &mut Vec<String>,
) -> Result<HeaderPassthrough> {
    let Some(field) = field else {
        return Ok(HeaderPassthrough::default());
    };
    let mut obj = field.object()?;
    let mut list = |key: &str| -> Result<HeaderList> {
        let Some(f) = obj.field(key) else {
            return Ok(HeaderList::Names(Vec::new()));
        };
        match f.value {
            Json::Str(s) if s == "all" => Ok(HeaderList::All),
            Json::Arr(_) => {
                let names = f.strings()?;
                for name in &names {
                    // Upstream compares names case-insensitively and an invalid one simply never
                    // matches; worth telling the operator, not worth refusing.
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        warnings.push(format!(
                            "{}: {name:?} is not a valid HTTP header name and never matches",
                            f.path
                        ));
                    }
                }
                Ok(HeaderList::Names(names))
            }
            _ => Err(f.err(format!(
                "invalid value: {}, expected \"all\" or an array of header names",
                describe(f.value)
            ))),
        }
    };
    let request_headers = list("request_headers")?;
    let response_headers = list("response_headers")?;
    obj.finish(&["request_headers", "response_headers"])?;
    Ok(HeaderPassthrough {
        request_headers,
        response_headers,
    })
}

fn describe(value: &Json) -> String {
    match value {
        Json::Str(s) => format!("string {s:?}"),
        Json::Null => "null".to_owned(),
        Json::Bool(_) => "a boolean".to_owned(),
        Json::Uint(_) | Json::Int(_) | Json::Float(_) => "a number".to_owned(),
        Json::Obj(_) => "an object".to_owned(),
        Json::Arr(_) => "an array".to_owned(),
    }
}

/// The deprecated `allow_non_tng_traffic_regexes`, handed to the entry which owns `direct_forward`.
pub(crate) struct LegacyDirectForward {
    pub(crate) path: String,
    pub(crate) regexes: Vec<Regex>,
}

pub(crate) fn parse_egress_ohttp(
    field: &Field<'_>,
    warnings: &mut Vec<String>,
) -> Result<(EgressOhttp, Option<LegacyDirectForward>)> {
    let mut obj = field.object()?;
    let key = match obj.opt("key") {
        Some(f) => parse_key(&f, warnings)?,
        None => KeySource::SelfGenerated {
            rotation_interval: DEFAULT_ROTATION_INTERVAL,
        },
    };
    let cors = obj.opt("cors").map(|f| parse_cors(&f)).transpose()?;
    let header_passthrough = parse_header_passthrough(obj.opt("header_passthrough"), warnings)?;
    let legacy = match obj.opt("allow_non_tng_traffic_regexes") {
        Some(f) => {
            let regexes = f
                .array()?
                .iter()
                .map(compile_regex)
                .collect::<Result<_>>()?;
            Some(LegacyDirectForward {
                path: f.path.clone(),
                regexes,
            })
        }
        None => None,
    };
    let forward_client_ip = obj
        .opt("forward_client_ip")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(true);
    let trust_ingress_client_ip = obj
        .opt("trust_ingress_client_ip")
        .map(|f| parse_trust(&f))
        .transpose()?;
    let tls = obj.opt("tls").map(|f| parse_server_tls(&f)).transpose()?;
    obj.finish(&[
        "key",
        "cors",
        "header_passthrough",
        "allow_non_tng_traffic_regexes",
        "forward_client_ip",
        "trust_ingress_client_ip",
        "tls",
    ])?;
    Ok((
        EgressOhttp {
            key,
            cors,
            header_passthrough,
            forward_client_ip,
            trust_ingress_client_ip,
            tls,
        },
        legacy,
    ))
}

fn parse_server_tls(field: &Field<'_>) -> Result<ServerTls> {
    let mut obj = field.object()?;
    let cert = obj.req("cert_file")?;
    let cert_file = PathBuf::from(cert.string()?);
    check_pem_bundle(&cert_file, "TLS certificate file").map_err(|m| cert.err(m))?;
    let key = obj.req("key_file")?;
    let key_file = PathBuf::from(key.string()?);
    check_private_key(&key_file).map_err(|m| key.err(m))?;
    obj.finish(&["cert_file", "key_file"])?;
    Ok(ServerTls {
        cert_file,
        key_file,
    })
}

fn check_private_key(path: &Path) -> std::result::Result<(), String> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| format!("cannot read TLS key file {shown}: {e}"))?;
    match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("no PEM private key in {shown}")),
        Err(e) => Err(format!("invalid PEM private key in {shown}: {e}")),
    }
}
