//! What an attested certificate says, as aligned `label  value` lines for a person or one JSON
//! document (`--json`) for scripts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tng_ratstls::evidence::{TAG_COCO_EVIDENCE, TAG_COCO_TOKEN};
use tng_ratstls::{Evidence, Model, ParsedCert, Verdict};

use crate::tools::time::{relative, utc};
use crate::transport::rats_tls::security::Framing;

pub enum Source<'a> {
    Generated,
    Endpoint(&'a str),
    File(&'a Path),
}

pub struct Report<'a> {
    pub source: Source<'a>,
    pub cert: &'a ParsedCert,
    /// Whether the evidence names this certificate's key (`pubkey-hash`); for a token, checked
    /// only when it is verified.
    pub binding: Result<(), String>,
    /// `verify` only: the verifier's verdict, or why it refused.
    pub verdict: Option<Result<Verdict, String>>,
    /// `dump` only: the framing the endpoint accepted.
    pub framing: Option<Framing>,
    pub written: Vec<PathBuf>,
}

#[derive(Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }
}

/// Prints the report. `pem` (certificates and keys not written to files) goes to stdout as
/// upstream prints it, the report for a person then to stderr; with `--json` both are in the
/// document.
pub fn emit(report: &Report<'_>, pem: String, output: Output) -> anyhow::Result<()> {
    let now = SystemTime::now();
    if output.json {
        let mut doc = document(report, now);
        if !pem.is_empty() {
            doc["pem"] = Value::String(pem);
        }
        let mut text = serde_json::to_string_pretty(&doc)?;
        text.push('\n');
        return write(&mut std::io::stdout().lock(), &text);
    }
    let text = human(report, now);
    if pem.is_empty() {
        write(&mut std::io::stdout().lock(), &text)
    } else {
        write(&mut std::io::stdout().lock(), &pem)?;
        write(&mut std::io::stderr().lock(), &text)
    }
}

/// Prints PEM alone (a certificate that could not be reported on).
pub fn emit_raw(pem: &str) -> anyhow::Result<()> {
    write(&mut std::io::stdout().lock(), pem)
}

fn write(out: &mut dyn std::io::Write, text: &str) -> anyhow::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

const WIDTH: usize = 16;

fn line(out: &mut String, indent: usize, label: &str, value: impl std::fmt::Display) {
    let pad = WIDTH.saturating_sub(indent);
    let _ = writeln!(out, "{:indent$}{label:<pad$} {value}", "");
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn model_name(model: Model) -> &'static str {
    match model {
        Model::BackgroundCheck => "background_check",
        Model::Passport => "passport",
    }
}

fn framing_name(framing: Framing) -> &'static str {
    match framing {
        Framing::Raw => "raw (ALPN rats-tls, rats_tls.multiplex: false)",
        Framing::H2 => "multiplexed (ALPN h2, rats_tls.multiplex: true)",
        Framing::Quic => "QUIC datagrams (ALPN rats-quic)",
    }
}

fn human(report: &Report<'_>, now: SystemTime) -> String {
    let mut out = String::new();
    let cert = report.cert;
    match &report.source {
        Source::Generated => line(&mut out, 0, "certificate", "generated"),
        Source::Endpoint(endpoint) => line(&mut out, 0, "endpoint", endpoint),
        Source::File(path) => line(&mut out, 0, "file", path.display()),
    }
    if let Some(framing) = report.framing {
        line(&mut out, 0, "framing", framing_name(framing));
    }
    line(&mut out, 0, "subject", &cert.subject);
    let (from, until) = (unix(cert.not_before), unix(cert.not_after));
    line(
        &mut out,
        0,
        "valid",
        format!(
            "{} to {} (expires {})",
            utc(from),
            utc(until),
            relative(until, now)
        ),
    );
    line(
        &mut out,
        0,
        "signature",
        format!("{}, self-signed, verifies", cert.signature_algorithm),
    );
    line(&mut out, 0, "sha256", hex::encode(cert.sha256));
    line(
        &mut out,
        0,
        "pubkey-hash",
        tng_ratstls::binding::pubkey_hash(&cert.spki),
    );
    match &cert.evidence {
        Evidence::Coco(evidence) => {
            line(
                &mut out,
                0,
                "evidence",
                format!("background check (CBOR tag {TAG_COCO_EVIDENCE:#x})"),
            );
            line(&mut out, 2, "TEE", &evidence.aa_tee_type);
            line(
                &mut out,
                2,
                "evidence size",
                format!("{} bytes (base64)", evidence.aa_evidence.len()),
            );
            line(
                &mut out,
                2,
                "runtime data",
                format!(
                    "{} ({})",
                    evidence.aa_runtime_data, evidence.aa_runtime_data_hash_algo
                ),
            );
        }
        Evidence::Token(token) => {
            line(
                &mut out,
                0,
                "evidence",
                format!("passport token (CBOR tag {TAG_COCO_TOKEN:#x})"),
            );
            token_lines(&mut out, token, now);
        }
    }
    match &report.binding {
        Ok(()) if matches!(cert.evidence, Evidence::Token(_)) => {
            line(&mut out, 0, "binding", "checked when the token is verified")
        }
        Ok(()) => line(
            &mut out,
            0,
            "binding",
            "ok: the evidence's runtime data names this key",
        ),
        Err(reason) => line(&mut out, 0, "binding", format!("BROKEN: {reason}")),
    }
    match &report.verdict {
        None => {}
        Some(Ok(verdict)) => {
            line(
                &mut out,
                0,
                "attestation",
                format!("verified, model {}", model_name(verdict.model)),
            );
            if !verdict.status.is_empty() {
                line(&mut out, 2, "EAR status", &verdict.status);
            }
            if !verdict.policy_ids.is_empty() {
                line(&mut out, 2, "policy ids", verdict.policy_ids.join(", "));
            }
            line(
                &mut out,
                2,
                "token expiry",
                format!("{} ({})", utc(verdict.exp), relative(verdict.exp, now)),
            );
        }
        Some(Err(reason)) => line(&mut out, 0, "attestation", format!("REFUSED: {reason}")),
    }
    for (i, path) in report.written.iter().enumerate() {
        line(
            &mut out,
            0,
            if i == 0 { "wrote" } else { "" },
            path.display(),
        );
    }
    out
}

/// A passport token as carried, decoded without verification (`verify` checks it).
fn token_lines(out: &mut String, token: &str, now: SystemTime) {
    let claims = match crate::tools::jwt_payload(token) {
        Ok(claims) => claims,
        Err(err) => return line(out, 2, "token", format!("undecodable: {err:#}")),
    };
    if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
        line(
            out,
            2,
            "token expiry",
            format!("{} ({}, not verified)", utc(exp), relative(exp, now)),
        );
    }
    let policies = token_policy_ids(&claims);
    if !policies.is_empty() {
        line(out, 2, "policy ids", policies.join(", "));
    }
}

/// `submods.*.ear.appraisal-policy-id` of an EAR token.
fn token_policy_ids(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut ids: Vec<String> = claims
        .get("submods")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|submods| submods.values())
        .filter_map(|submod| submod.get("ear.appraisal-policy-id"))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    ids.dedup();
    ids
}

fn document(report: &Report<'_>, now: SystemTime) -> Value {
    let cert = report.cert;
    let source = match &report.source {
        Source::Generated => json!({"generated": true}),
        Source::Endpoint(endpoint) => json!({"endpoint": endpoint}),
        Source::File(path) => json!({"file": path.display().to_string()}),
    };
    let evidence = match &cert.evidence {
        Evidence::Coco(evidence) => json!({
            "model": "background_check",
            "cbor_tag": TAG_COCO_EVIDENCE,
            "tee_type": evidence.aa_tee_type,
            "aa_evidence": evidence.aa_evidence,
            "aa_runtime_data": evidence.aa_runtime_data,
            "aa_runtime_data_hash_algo": evidence.aa_runtime_data_hash_algo,
        }),
        Evidence::Token(token) => json!({
            "model": "passport",
            "cbor_tag": TAG_COCO_TOKEN,
            "token": token,
            "claims": crate::tools::jwt_payload(token).ok(),
        }),
    };
    let mut doc = json!({
        "source": source,
        "subject": cert.subject,
        "not_before": unix(cert.not_before),
        "not_after": unix(cert.not_after),
        "expires_in_seconds": crate::tools::time::seconds_from_now(unix(cert.not_after), now),
        "signature_algorithm": cert.signature_algorithm,
        "sha256": hex::encode(cert.sha256),
        "pubkey_hash": tng_ratstls::binding::pubkey_hash(&cert.spki),
        "evidence": evidence,
        "binding": match &report.binding {
            Ok(()) => json!({"ok": true}),
            Err(reason) => json!({"ok": false, "reason": reason}),
        },
        "written": report.written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    if let Some(framing) = report.framing {
        doc["framing"] = json!(match framing {
            Framing::Raw => "rats-tls",
            Framing::H2 => "h2",
            Framing::Quic => "rats-quic",
        });
    }
    if let Some(verdict) = &report.verdict {
        doc["attestation"] = match verdict {
            Ok(v) => json!({
                "verified": true,
                "model": model_name(v.model),
                "ear_status": v.status,
                "policy_ids": v.policy_ids,
                "exp": v.exp,
            }),
            Err(reason) => json!({"verified": false, "reason": reason}),
        };
    }
    doc
}
