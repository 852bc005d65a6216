use crate::error::{ConfigError, Result};
use crate::json::Field;

/// Lists hold `"*"` for "any"; other entries were validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
}

pub(crate) fn parse_cors(field: &Field<'_>) -> Result<Cors> {
    let mut obj = field.object()?;
    let mut list = |key: &str, check: fn(&str) -> bool, what: &str| -> Result<Vec<String>> {
        let Some(f) = obj.field(key) else {
            return Ok(Vec::new());
        };
        let items = f.array()?;
        let mut values = Vec::with_capacity(items.len());
        for item in &items {
            values.push(item.string()?);
        }
        // With "*" the dimension is "any" and upstream does not look at the other entries.
        if !values.iter().any(|v| v == "*") {
            for (item, value) in items.iter().zip(&values) {
                if !check(value) {
                    return Err(item.err(format!("invalid {what} {value:?}")));
                }
            }
        }
        Ok(values)
    };
    let allow_origins = list(
        "allow_origins",
        |v| http::HeaderValue::from_str(v).is_ok(),
        "origin",
    )?;
    let allow_methods = list(
        "allow_methods",
        |v| http::Method::from_bytes(v.as_bytes()).is_ok(),
        "HTTP method",
    )?;
    let allow_headers = list("allow_headers", is_header_name, "header name")?;
    let expose_headers = list("expose_headers", is_header_name, "header name")?;
    let credentials_field = obj.field("allow_credentials");
    let allow_credentials = credentials_field
        .as_ref()
        .map(Field::bool)
        .transpose()?
        .unwrap_or(false);
    obj.finish(&[
        "allow_origins",
        "allow_methods",
        "allow_headers",
        "expose_headers",
        "allow_credentials",
    ])?;
    if allow_credentials {
        let lists = [
            ("allow_origins", &allow_origins),
            ("allow_methods", &allow_methods),
            ("allow_headers", &allow_headers),
            ("expose_headers", &expose_headers),
        ];
        if let Some((name, _)) = lists.iter().find(|(_, l)| l.iter().any(|v| v == "*")) {
            // Browsers refuse credentials with wildcards, and tower-http panics on the combination.
            let path = credentials_field.map(|f| f.path).unwrap_or_default();
            return Err(ConfigError::new(
                path,
                format!("cannot be true when {name} contains \"*\""),
            ));
        }
    }
    Ok(Cors {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
    })
}

fn is_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}
