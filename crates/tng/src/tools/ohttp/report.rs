//! The report of a key configuration: aligned `label  value` lines for a person, or one JSON
//! document (`--json`) for scripts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};
use tng_ohttp::keys::{aead_name, kdf_name, kem_name};

use super::bundle::{Attestation, Bundle};
use crate::tools::time::{relative, seconds_from_now, utc};

pub enum Source<'a> {
    Endpoint(&'a str),
    File(&'a Path),
}

pub fn print(
    source: &Source<'_>,
    bundle: &Bundle,
    written: &[PathBuf],
    as_json: bool,
    now: SystemTime,
) -> anyhow::Result<()> {
    let text = if as_json {
        let mut text = serde_json::to_string_pretty(&document(source, bundle, written, now))?;
        text.push('\n');
        text
    } else {
        human(source, bundle, written, now)
    };
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

const WIDTH: usize = 16;

fn line(out: &mut String, indent: usize, label: &str, value: impl std::fmt::Display) {
    let pad = WIDTH.saturating_sub(indent);
    let _ = writeln!(out, "{:indent$}{label:<pad$} {value}", "");
}

fn human(source: &Source<'_>, bundle: &Bundle, written: &[PathBuf], now: SystemTime) -> String {
    let mut out = String::new();
    match source {
        Source::Endpoint(url) => line(&mut out, 0, "endpoint", url),
        Source::File(path) => line(&mut out, 0, "file", path.display()),
    }
    let expire = bundle.response.hpke_key_config.expire_timestamp;
    line(
        &mut out,
        0,
        "key expiry",
        format!("{} ({})", utc(expire), relative(expire, now)),
    );
    line(&mut out, 0, "keys", bundle.listed.len());
    for (i, config) in bundle.listed.iter().enumerate() {
        let _ = writeln!(out, "key [{i}]");
        line(&mut out, 2, "key id", config.key_id);
        line(
            &mut out,
            2,
            "KEM",
            format!("{} (0x{:04x})", kem_name(config.kem_id), config.kem_id),
        );
        line(
            &mut out,
            2,
            "public key",
            if config.public_key.is_empty() {
                "(unknown KEM: not shown)".to_owned()
            } else {
                hex::encode(&config.public_key)
            },
        );
        for (j, (kdf, aead)) in config.suites.iter().enumerate() {
            line(
                &mut out,
                2,
                if j == 0 { "suites" } else { "" },
                format!(
                    "{} + {} (0x{kdf:04x}, 0x{aead:04x})",
                    kdf_name(*kdf),
                    aead_name(*aead)
                ),
            );
        }
    }
    match &bundle.attestation {
        None => line(
            &mut out,
            0,
            "attestation",
            "none (not requested, or the egress does not attest)",
        ),
        Some(att) => human_attestation(&mut out, att, now),
    }
    for (i, path) in written.iter().enumerate() {
        line(
            &mut out,
            0,
            if i == 0 { "wrote" } else { "" },
            path.display(),
        );
    }
    out
}

fn human_attestation(out: &mut String, att: &Attestation, now: SystemTime) {
    let verdict = if att.verified {
        "verified"
    } else if att.token.is_some() {
        "NOT verified (decoded only)"
    } else {
        "evidence only (not converted, not verified)"
    };
    line(
        out,
        0,
        "attestation",
        format!("{verdict}, model {}, provider {}", att.model, att.provider),
    );
    if !att.policy_ids.is_empty() {
        line(out, 2, "policy ids", att.policy_ids.join(", "));
    }
    if let Some(exp) = att.exp {
        line(
            out,
            2,
            "token expiry",
            format!("{} ({})", utc(exp), relative(exp, now)),
        );
    }
    let Some(claims) = &att.claims else {
        if let Some(tee) = att
            .evidence
            .as_ref()
            .and_then(|e| e.get("aa_tee_type"))
            .and_then(Value::as_str)
        {
            line(out, 2, "tee", tee);
        }
        return;
    };
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        line(out, 2, "issuer", iss);
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_u64) {
        line(
            out,
            2,
            "issued",
            format!("{} ({})", utc(iat), relative(iat, now)),
        );
    }
    if let Some(submods) = claims.get("submods").and_then(Value::as_object) {
        for (name, submod) in submods {
            let status = submod
                .get("ear.status")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let mut value = format!("{name}: {status}");
            if let Some(vector) = submod
                .get("ear.trustworthiness-vector")
                .and_then(Value::as_object)
            {
                let parts: Vec<String> = vector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = write!(value, " ({})", parts.join(", "));
            }
            line(out, 2, "status", value);
        }
    }
}

fn document(source: &Source<'_>, bundle: &Bundle, written: &[PathBuf], now: SystemTime) -> Value {
    let expire = bundle.response.hpke_key_config.expire_timestamp;
    let keys: Vec<Value> = bundle
        .listed
        .iter()
        .map(|c| {
            json!({
                "key_id": c.key_id,
                "kem": {"id": c.kem_id, "name": kem_name(c.kem_id)},
                "public_key": hex::encode(&c.public_key),
                "symmetric_suites": c.suites.iter().map(|(kdf, aead)| json!({
                    "kdf": {"id": kdf, "name": kdf_name(*kdf)},
                    "aead": {"id": aead, "name": aead_name(*aead)},
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let attestation = bundle.attestation.as_ref().map(|att| {
        json!({
            "model": att.model,
            "provider": att.provider,
            "verified": att.verified,
            "policy_ids": att.policy_ids,
            "token_exp": att.exp,
            "token_expires_in_secs": att.exp.map(|e| seconds_from_now(e, now)),
            "status": att.claims.as_ref().and_then(|c| c.get("submods")).and_then(Value::as_object).map(|s| {
                s.iter().map(|(k, v)| (k.clone(), v.get("ear.status").cloned().unwrap_or(Value::Null))).collect::<serde_json::Map<_, _>>()
            }),
            "claims": att.claims,
            "token": att.token,
        })
    });
    let (source_key, source_value) = match source {
        Source::Endpoint(url) => ("endpoint", (*url).to_owned()),
        Source::File(path) => ("file", path.display().to_string()),
    };
    json!({
        (source_key): source_value,
        "expire_timestamp": expire,
        "expires_in_secs": seconds_from_now(expire, now),
        "keys": keys,
        "attestation": attestation,
        "written": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "response": bundle.document,
    })
}
