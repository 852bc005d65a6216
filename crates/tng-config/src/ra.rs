use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, Result};
use crate::json::{child_path, index_path, Field, Obj};

/// The flattened `no_ra` / `attest` / `verify` of an entry (or of a `peer_shared` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ra {
    pub no_ra: bool,
    pub attest: Option<Attest>,
    pub verify: Option<Verify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    BackgroundCheck,
    Passport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AaProvider {
    /// Attestation Agent over ttrpc on a unix socket (`aa_addr`).
    Coco,
    /// The AA's "API Server Rest" HTTP proxy (`asr_addr`).
    CocoAsr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    pub model: Model,
    pub aa_provider: AaProvider,
    /// `unix:///...`. Empty only for `CocoAsr` when none was given (that provider does not use it).
    pub aa_addr: String,
    /// Set (and an http(s) URL) for `CocoAsr`.
    pub asr_addr: Option<String>,
    pub refresh_interval: Duration,
    /// Passport only (required there); accepted and kept otherwise.
    pub as_addr: Option<String>,
    pub policy_ids: Vec<String>,
    pub as_headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    pub model: Model,
    /// Always set in the background-check model.
    pub as_addr: Option<String>,
    pub policy_ids: Vec<String>,
    pub as_headers: BTreeMap<String, String>,
    /// Absent and empty differ (see the startup checks of the spec, §6.3).
    pub trusted_certs_paths: Option<Vec<PathBuf>>,
    pub verify_signer_transparency: bool,
    pub skip_as_token_cert_verify: bool,
}

pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);

// Every key some upstream variant reads at this level is accepted (even when the chosen variant
// ignores it), so configs written for another model or provider still load.
const ATTEST_KEYS: [&str; 13] = [
    "model",
    "aa_provider",
    "aa_type",
    "aa_addr",
    "asr_addr",
    "refresh_interval",
    "as_provider",
    "as_type",
    "as_addr",
    "policy_ids",
    "as_headers",
    "api_key",
    "ita_jwks_addr",
];
const VERIFY_KEYS: [&str; 15] = [
    "model",
    "as_provider",
    "as_type",
    "as_addr",
    "policy_ids",
    "as_headers",
    "trusted_certs_paths",
    "verify_signer_transparency",
    "skip_as_token_cert_verify",
    "aa_provider",
    "aa_type",
    "api_key",
    "ita_jwks_addr",
    "attestation_policy",
    "reference_values",
];

/// Reads `no_ra`, `attest` and `verify` out of `obj` and applies the cross-field rules.
pub(crate) fn parse_ra(obj: &mut Obj<'_>, warnings: &mut Vec<String>) -> Result<Ra> {
    let no_ra = obj
        .field("no_ra")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    let attest = obj.opt("attest").map(|f| parse_attest(&f)).transpose()?;
    let verify = obj.opt("verify").map(|f| parse_verify(&f)).transpose()?;
    if no_ra {
        if verify.is_some() {
            return Err(obj.err("\"no_ra\": true cannot be combined with verify"));
        }
        if attest.is_some() {
            return Err(obj.err("\"no_ra\": true cannot be combined with attest"));
        }
        warnings.push(format!(
            "{}: \"no_ra\": true disables remote attestation; never use it in production",
            obj.path
        ));
    } else if attest.is_none() && verify.is_none() {
        return Err(obj.err("at least one of attest, verify or \"no_ra\": true must be set"));
    }
    Ok(Ra {
        no_ra,
        attest,
        verify,
    })
}

/// A tag with upstream's default injection: only an absent key gets the default (`null` is an
/// error, as upstream).
fn tag(obj: &mut Obj<'_>, key: &str, variants: &[&str], default: &'static str) -> Result<String> {
    let Some(field) = obj.field(key) else {
        return Ok(default.to_owned());
    };
    let value = field.string()?;
    if !variants.contains(&value.as_str()) {
        let list: Vec<String> = variants.iter().map(|v| format!("`{v}`")).collect();
        return Err(field.err(format!(
            "unknown variant `{value}`, expected one of {}",
            list.join(", ")
        )));
    }
    Ok(value)
}

fn unsupported(obj: &Obj<'_>, key: &str, what: &str) -> ConfigError {
    ConfigError::new(
        child_path(&obj.path, key),
        format!("{what} is not supported by this implementation"),
    )
}

fn parse_model(obj: &mut Obj<'_>) -> Result<Model> {
    Ok(
        match tag(
            obj,
            "model",
            &["background_check", "passport"],
            "background_check",
        )?
        .as_str()
        {
            "passport" => Model::Passport,
            _ => Model::BackgroundCheck,
        },
    )
}

fn check_as_provider(obj: &mut Obj<'_>) -> Result<()> {
    if tag(obj, "as_provider", &["coco", "ita"], "coco")? == "ita" {
        return Err(unsupported(
            obj,
            "as_provider",
            "the ITA attestation service (`as_provider: ita`)",
        ));
    }
    Ok(())
}

fn check_as_type(obj: &mut Obj<'_>) -> Result<()> {
    match tag(obj, "as_type", &["restful", "grpc", "builtin"], "restful")?.as_str() {
        "grpc" => Err(unsupported(
            obj,
            "as_type",
            "the gRPC attestation service (`as_type: grpc`)",
        )),
        "builtin" => Err(unsupported(
            obj,
            "as_type",
            "the builtin attestation service (`as_type: builtin`)",
        )),
        _ => Ok(()),
    }
}

fn parse_attest(field: &Field<'_>) -> Result<Attest> {
    let mut obj = field.object()?;
    let model = parse_model(&mut obj)?;
    let aa_provider = match tag(
        &mut obj,
        "aa_provider",
        &["coco", "coco_asr", "ita", "ita_asr"],
        "coco",
    )?
    .as_str()
    {
        "coco" => AaProvider::Coco,
        "coco_asr" => AaProvider::CocoAsr,
        other => {
            return Err(unsupported(
                &obj,
                "aa_provider",
                &format!("the ITA attester (`aa_provider: {other}`)"),
            ));
        }
    };
    check_as_provider(&mut obj)?;
    let aa_type = tag(&mut obj, "aa_type", &["uds", "builtin"], "uds")?;
    if aa_provider == AaProvider::Coco && aa_type == "builtin" {
        return Err(unsupported(
            &obj,
            "aa_type",
            "the builtin attestation agent (`aa_type: builtin`)",
        ));
    }
    let aa_addr = match (aa_provider, obj.opt("aa_addr")) {
        (_, Some(f)) => {
            let addr = f.string()?;
            // The socket's existence is the runtime's business (it may appear later).
            if !addr.starts_with("unix:///") {
                return Err(f.err("must start with unix:///"));
            }
            addr
        }
        (AaProvider::Coco, None) => return Err(required(&obj, "aa_addr")),
        (AaProvider::CocoAsr, None) => String::new(),
    };
    let asr_addr = match (aa_provider, obj.opt("asr_addr")) {
        (_, Some(f)) => Some(http_url(&f)?),
        (AaProvider::CocoAsr, None) => return Err(required(&obj, "asr_addr")),
        (AaProvider::Coco, None) => None,
    };
    let refresh_interval = obj
        .opt("refresh_interval")
        .map(|f| f.u64().map(Duration::from_secs))
        .transpose()?
        .unwrap_or(DEFAULT_REFRESH_INTERVAL);
    // The passport converter's AS settings; harmless extras in the background-check model.
    check_as_type(&mut obj)?;
    let as_addr = obj.opt("as_addr").map(|f| http_url(&f)).transpose()?;
    if model == Model::Passport && as_addr.is_none() {
        return Err(required(&obj, "as_addr"));
    }
    let policy_ids = obj
        .field("policy_ids")
        .map(|f| f.strings())
        .transpose()?
        .unwrap_or_default();
    let as_headers = parse_as_headers(&mut obj)?;
    ignore_known(&mut obj, &["api_key", "ita_jwks_addr"]);
    obj.finish(&ATTEST_KEYS)?;
    Ok(Attest {
        model,
        aa_provider,
        aa_addr,
        asr_addr,
        refresh_interval,
        as_addr,
        policy_ids,
        as_headers,
    })
}

fn parse_verify(field: &Field<'_>) -> Result<Verify> {
    let mut obj = field.object()?;
    let model = parse_model(&mut obj)?;
    check_as_provider(&mut obj)?;
    check_as_type(&mut obj)?;
    // Upstream injects these into every RA object; the verifier never reads them.
    for key in ["aa_provider", "aa_type"] {
        if let Some(f) = obj.field(key) {
            f.str()?;
        }
    }
    let as_addr_field = obj.opt("as_addr");
    let as_addr = as_addr_field.as_ref().map(Field::string).transpose()?;
    if model == Model::BackgroundCheck && as_addr.is_none() {
        return Err(required(&obj, "as_addr"));
    }
    let policy_ids = obj.req("policy_ids")?.strings()?;
    let as_headers_field = obj.opt("as_headers");
    let as_headers = parse_as_headers(&mut obj)?;
    let certs_field = obj.opt("trusted_certs_paths");
    let trusted_certs_paths = certs_field.as_ref().map(Field::strings).transpose()?;
    let verify_signer_transparency = obj
        .field("verify_signer_transparency")
        .map(|f| f.bool())
        .transpose()?
        .unwrap_or(false);
    let skip_field = obj.field("skip_as_token_cert_verify");
    let skip_as_token_cert_verify = skip_field
        .as_ref()
        .map(Field::bool)
        .transpose()?
        .unwrap_or(false);
    ignore_known(
        &mut obj,
        &[
            "api_key",
            "ita_jwks_addr",
            "attestation_policy",
            "reference_values",
        ],
    );
    obj.finish(&VERIFY_KEYS)?;

    // Startup checks in upstream's order.
    if let Some(f) = &as_headers_field {
        if !as_headers.is_empty() && as_addr.is_none() {
            return Err(f.err("cannot be set without as_addr"));
        }
    }
    if skip_as_token_cert_verify {
        if let Some(f) = &certs_field {
            return Err(f.err("cannot be set when skip_as_token_cert_verify is true"));
        }
        if let (Model::Passport, Some(f)) = (model, &as_addr_field) {
            return Err(f.err(
                "cannot be set in the passport model when skip_as_token_cert_verify is true",
            ));
        }
    } else if model == Model::Passport && as_addr.is_none() && trusted_certs_paths.is_none() {
        return Err(field.err(
            "in the passport model at least one of as_addr or trusted_certs_paths must be set (or skip_as_token_cert_verify: true)",
        ));
    }
    if let (Some(f), Some(paths)) = (&certs_field, &trusted_certs_paths) {
        for (i, path) in paths.iter().enumerate() {
            if !Path::new(path).exists() {
                let item = index_path(&f.path, i);
                return Err(ConfigError::new(
                    item,
                    format!("trusted certificate path does not exist: {path}"),
                ));
            }
        }
    }
    if let Some(f) = &as_addr_field {
        http_url(f)?;
    }
    Ok(Verify {
        model,
        as_addr,
        policy_ids,
        as_headers,
        trusted_certs_paths: trusted_certs_paths
            .map(|p| p.into_iter().map(PathBuf::from).collect()),
        verify_signer_transparency,
        skip_as_token_cert_verify,
    })
}

fn required(obj: &Obj<'_>, key: &str) -> ConfigError {
    ConfigError::new(child_path(&obj.path, key), "required")
}

/// Keys of out-of-scope variants: accepted so that such configs are not "unknown", but unread.
fn ignore_known(obj: &mut Obj<'_>, keys: &[&str]) {
    for key in keys {
        obj.field(key);
    }
}

fn parse_as_headers(obj: &mut Obj<'_>) -> Result<BTreeMap<String, String>> {
    let Some(field) = obj.opt("as_headers") else {
        return Ok(BTreeMap::new());
    };
    let headers = field.string_map()?;
    for (name, value) in &headers {
        let path = child_path(&field.path, name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::new(path, "not a valid HTTP header name"));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::new(path, "not a valid HTTP header value"));
        }
    }
    Ok(headers)
}

/// Attestation Service / ASR addresses are base URLs for an HTTP client.
pub(crate) fn http_url(field: &Field<'_>) -> Result<String> {
    let text = field.string()?;
    let ok = text.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| !a.host().is_empty())
    });
    if !ok {
        return Err(field.err(format!("must be an http:// or https:// URL (got {text:?})")));
    }
    Ok(text)
}

/// Parses a standalone `verify` object (the `--verify JSON` of the command-line tools) with
/// the same rules as inside a configuration. Errors are located under `name` (the flag), e.g.
/// `--verify.policy_ids: missing field`.
pub fn parse_verify_json(text: &str, name: &str) -> Result<Verify> {
    let document = crate::json::parse_document(text).map_err(|e| relocate(e, name))?;
    parse_verify(&Field {
        path: name.to_owned(),
        value: &document,
    })
}

/// Parses a standalone `attest` object (the `--attest JSON` of the command-line tools).
pub fn parse_attest_json(text: &str, name: &str) -> Result<Attest> {
    let document = crate::json::parse_document(text).map_err(|e| relocate(e, name))?;
    parse_attest(&Field {
        path: name.to_owned(),
        value: &document,
    })
}

fn relocate(err: ConfigError, name: &str) -> ConfigError {
    let path = if err.path.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{}", err.path)
    };
    ConfigError::new(path, err.message)
}
