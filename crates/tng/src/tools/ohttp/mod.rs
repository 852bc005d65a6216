//! `tng tools ohttp dump | verify | decode`: an egress's key configuration as the ingress sees
//! it, for a person (aligned report) or a script (`--json`), and saved as a bundle.
//!
//! - `dump` performs the ingress's own key-config exchange
//!   ([`exchange_key_config`](crate::transport::ohttp::ingress::key_cache::exchange_key_config)),
//!   so with `--verify` the attestation is checked exactly as a verifying ingress checks it;
//! - `verify` re-checks a saved `raw.json` (the token's signature, policy ids, expiry and its
//!   binding to the key config; in the background-check model the evidence is converted again
//!   at the Attestation Service of `--verify`);
//! - `decode` writes the derived artifacts without any network access and without verifying.

mod bundle;
mod report;

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Args, Subcommand};
use tng_ohttp::api::KeyConfigResponse;

use self::bundle::{Attestation, Bundle};
use crate::transport::ohttp::ingress::key_cache;

#[derive(Args, Debug)]
pub struct OhttpArgs {
    #[command(subcommand)]
    command: OhttpCommand,
}

#[derive(Subcommand, Debug)]
enum OhttpCommand {
    /// dump an ohttp server's key-config response and derived artifacts
    Dump(DumpArgs),
    /// verify the attestation in a dumped ohttp key-config JSON
    Verify(VerifyArgs),
    /// decode a dumped ohttp key-config JSON into derived artifacts without contacting the
    /// server or an AS
    Decode(DecodeArgs),
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// URL of the egress (the key-config request is a POST to it, as an ingress sends it)
    #[arg(long)]
    endpoint: String,
    /// `verify` object (inline JSON or a file). Requests the egress's attestation (passport,
    /// or background check with a challenge from this verifier's Attestation Service) and
    /// verifies it as an ingress would; the dump fails if it does not verify
    #[arg(long, value_name = "JSON")]
    verify: Option<String>,
    /// write only the raw `KeyConfigResponse` body to this file (pretty JSON). Mutually
    /// exclusive with `--out-dir`
    #[arg(long, value_name = "FILE", conflicts_with = "out_dir")]
    raw: Option<PathBuf>,
    /// write the full artifact bundle to this directory: `raw.json`, `hpke.base64`,
    /// `hpke.json`, and (with `--verify`) `quote.bin`, `eventlog.json`,
    /// `attestation_result.jwt`, `attestation_result.claims.json`. Mutually exclusive with
    /// `--raw`
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// print a JSON document for scripts instead of the report
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// a `raw.json` written by `dump` (ours or upstream's)
    #[arg(long, value_name = "FILE")]
    raw: PathBuf,
    /// `verify` object (inline JSON or a file)
    #[arg(long, value_name = "JSON")]
    verify: String,
    /// print a JSON document for scripts instead of the report
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DecodeArgs {
    /// a `raw.json` written by `dump` (ours or upstream's)
    #[arg(long, value_name = "FILE")]
    raw: PathBuf,
    /// attestation-result JWT file to also decode `claims` and `eventlog` from (the JWT
    /// payload, not verified). Without this, decode only produces `hpke.*` and `quote.bin`
    /// from the raw body
    #[arg(long, value_name = "FILE")]
    attestation_result: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// print a JSON document for scripts instead of the report
    #[arg(long)]
    json: bool,
}

pub async fn run(args: OhttpArgs) -> anyhow::Result<()> {
    match args.command {
        OhttpCommand::Dump(args) => dump(args).await,
        OhttpCommand::Verify(args) => verify(args).await,
        OhttpCommand::Decode(args) => decode(args),
    }
}

async fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let uri: http::Uri = args
        .endpoint
        .parse()
        .with_context(|| format!("--endpoint {}: not a URL", args.endpoint))?;
    let tls = match uri.scheme_str() {
        Some("http") => None,
        Some("https") => Some(crate::http::client::tls_config(&[])?),
        _ => anyhow::bail!(
            "--endpoint {}: must be an http:// or https:// URL",
            args.endpoint
        ),
    };
    if uri.host().is_none() {
        anyhow::bail!("--endpoint {}: has no host", args.endpoint);
    }
    if let Some(dir) = &args.out_dir {
        crate::tools::fs::ensure_dir(dir, "--out-dir")?;
    }
    let verifier = match &args.verify {
        Some(text) => Some(build_verifier(text).await?),
        None => None,
    };
    let client =
        crate::http::client::build(crate::http::client::ConnectOptions { so_mark: None, tls });
    let exchange = key_cache::exchange_key_config(&client, &args.endpoint, verifier.as_ref(), None)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let document: serde_json::Value = serde_json::from_slice(&exchange.raw)
        .context("the egress's key-config response is not JSON")?;
    let attestation = match (exchange.token, &exchange.response.attestation_info) {
        (Some(token), Some(info)) => Some(Attestation::verified(token, info)),
        _ => None,
    };
    let bundle = Bundle::new(document, exchange.response, attestation)?;
    if let Some(path) = &args.raw {
        bundle.write_raw(path)?;
    }
    let written = match &args.out_dir {
        Some(dir) => bundle.write_dir(dir)?,
        None => Vec::new(),
    };
    report::print(
        &report::Source::Endpoint(&args.endpoint),
        &bundle,
        &written,
        args.json,
        SystemTime::now(),
    )
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let (document, response) = read_raw(&args.raw)?;
    let verifier = build_verifier(&args.verify).await?;
    let file = args.raw.display().to_string();
    let refused = |reason: String| anyhow::anyhow!("{file}: verification failed: {reason}");
    let info = response.attestation_info.clone().ok_or_else(|| {
        refused(
            "the bundle has no attestation (attestation_info is null: dumped without --verify, \
             or from an egress that does not attest)"
                .into(),
        )
    })?;
    // Check the key list first: a token vouching for an unusable key config is no use.
    bundle::listing(&response).map_err(|e| refused(e.to_string()))?;
    let challenge = match (&info, verifier.model()) {
        (
            tng_ohttp::api::AttestationInfo::BackgroundCheck { evidence, .. },
            tng_attest::Model::BackgroundCheck,
        ) => Some(bundle::evidence_challenge(evidence).map_err(refused)?),
        _ => None,
    };
    let token = key_cache::verify_server(&verifier, challenge.as_deref(), &response, &file)
        .await
        .map_err(|e| refused(e.message))?;
    let bundle = Bundle::new(
        document,
        response,
        Some(Attestation::verified(token, &info)),
    )?;
    report::print(
        &report::Source::File(&args.raw),
        &bundle,
        &[],
        args.json,
        SystemTime::now(),
    )
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let (document, response) = read_raw(&args.raw)?;
    crate::tools::fs::ensure_dir(&args.out_dir, "--out-dir")?;
    let token = match &args.attestation_result {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--attestation-result {}: cannot read", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let attestation = match (&response.attestation_info, token) {
        (info, Some(token)) => Some(Attestation::unverified(token, info.as_ref()).with_context(
            || {
                format!(
                    "--attestation-result {}",
                    args.attestation_result
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            },
        )?),
        (
            Some(
                info @ tng_ohttp::api::AttestationInfo::Passport {
                    attestation_result, ..
                },
            ),
            None,
        ) => Some(
            Attestation::unverified(attestation_result.clone(), Some(info))
                .with_context(|| format!("{}: attestation_result", args.raw.display()))?,
        ),
        (Some(info), None) => Some(Attestation::evidence_only(info)),
        (None, None) => None,
    };
    let bundle = Bundle::new(document, response, attestation)?;
    let written = bundle.write_dir(&args.out_dir)?;
    report::print(
        &report::Source::File(&args.raw),
        &bundle,
        &written,
        args.json,
        SystemTime::now(),
    )
}

fn read_raw(path: &std::path::Path) -> anyhow::Result<(serde_json::Value, KeyConfigResponse)> {
    let text = std::fs::read(path)
        .with_context(|| format!("--raw {}: cannot read the file", path.display()))?;
    let document: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("--raw {}: not JSON", path.display()))?;
    let response: KeyConfigResponse =
        serde_json::from_value(document.clone()).with_context(|| {
            format!(
                "--raw {}: not a key-config response (KeyConfigResponse)",
                path.display()
            )
        })?;
    Ok((document, response))
}

async fn build_verifier(text: &str) -> anyhow::Result<tng_attest::Verifier> {
    let text = crate::tools::json_argument(text, "--verify")?;
    let config = tng_config::parse_verify_json(&text, "--verify")?;
    tng_attest::Verifier::new(&config, None)
        .await
        .context("--verify")
}
