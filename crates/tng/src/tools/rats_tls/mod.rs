//! `tng tools rats-tls gen | dump | verify`: the attested certificates of the rats-TLS
//! transport, outside a tunnel.
//!
//! - `gen` issues a certificate exactly as an attesting gateway does ([`IssuedCert::issue`]:
//!   a fresh key, evidence from the Attestation Agent bound to it, in the passport model the
//!   token for it);
//! - `dump` performs a TLS handshake with a live rats-TLS endpoint and keeps the certificate it
//!   presents (with `--attest`, presenting our own, for an egress that verifies its clients);
//! - `verify` checks a certificate as a verifying gateway checks its peer's
//!   ([`PeerVerifier::appraise`]), against the Attestation Service or the token.
//!
//! The flags are upstream 2.12's. Without `--cert-out` (`--key-out`), `gen` and `dump` print
//! the PEM on stdout as upstream does, so `tng tools rats-tls dump … > peer.pem` keeps working,
//! and the report for a person goes to stderr; with the files written, the report goes to
//! stdout. `--json` (ours) prints one document for scripts instead of the report.

mod probe;
mod report;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rustls::pki_types::CertificateDer;
use tng_ratstls::{IssuedCert, ParsedCert, PeerVerifier};

use self::report::{Output, Report};
use crate::transport::rats_tls::security;

#[derive(Args, Debug)]
pub struct RatsTlsArgs {
    #[command(subcommand)]
    command: RatsTlsCommand,
}

#[derive(Subcommand, Debug)]
enum RatsTlsCommand {
    /// generate a rats-tls cert locally from an attest config
    Gen(GenArgs),
    /// capture a rats-tls server cert from a live endpoint
    Dump(DumpArgs),
    /// verify a rats-tls cert against a verify config
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
struct GenArgs {
    /// `attest` object (inline JSON or a file), as in an `add_egress` entry
    #[arg(long, value_name = "JSON")]
    attest: String,
    /// write the certificate here (PEM) instead of printing it
    #[arg(long, value_name = "PEM")]
    cert_out: Option<PathBuf>,
    /// write the private key here (PEM, mode 0600) instead of printing it
    #[arg(long, value_name = "PEM")]
    key_out: Option<PathBuf>,
    /// print a JSON document for scripts instead of the report
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// `host:port` of a rats-TLS egress
    #[arg(long)]
    endpoint: String,
    /// `attest` object (inline JSON or a file): present an attested client certificate, for
    /// an egress with `verify`
    #[arg(long, value_name = "JSON")]
    attest: Option<String>,
    /// write the peer's certificate here (PEM) instead of printing it
    #[arg(long, value_name = "PEM")]
    cert_out: Option<PathBuf>,
    /// print a JSON document for scripts instead of the report
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// the certificate (PEM, or DER)
    #[arg(long)]
    cert: PathBuf,
    /// `verify` object (inline JSON or a file), as in an `add_ingress` entry
    #[arg(long, value_name = "JSON")]
    verify: String,
    /// print a JSON document for scripts instead of the report
    #[arg(long)]
    json: bool,
}

pub async fn run(args: RatsTlsArgs) -> anyhow::Result<()> {
    match args.command {
        RatsTlsCommand::Gen(args) => gen(args).await,
        RatsTlsCommand::Dump(args) => dump(args).await,
        RatsTlsCommand::Verify(args) => verify(args).await,
    }
}

async fn gen(args: GenArgs) -> anyhow::Result<()> {
    let attester = build_attester(&args.attest)?;
    let issued = IssuedCert::issue(&attester)
        .await
        .context("cannot issue an attested certificate")?;
    let cert_pem = pem_encode("CERTIFICATE", issued.der.as_ref());
    let key_pem = pem_encode("PRIVATE KEY", issued.key.secret_pkcs8_der());
    let mut pems = Pems::default();
    pems.put(args.cert_out.as_deref(), &cert_pem, 0o644)?;
    pems.put(args.key_out.as_deref(), &key_pem, 0o600)?;
    let parsed = parse(issued.der.as_ref())?;
    let report = Report {
        source: report::Source::Generated,
        cert: &parsed,
        binding: parsed
            .check_binding()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        verdict: None,
        framing: None,
        written: pems.written,
    };
    report::emit(&report, pems.printed, Output::new(args.json))
}

async fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let (host, port) = split_endpoint(&args.endpoint)?;
    let resolver = match &args.attest {
        Some(text) => {
            let attester = build_attester(text)?;
            let manager = tng_ratstls::CertManager::start(attester, security::provider())
                .await
                .context("--attest")?;
            Some(manager as std::sync::Arc<dyn rustls::client::ResolvesClientCert>)
        }
        None => None,
    };
    let captured = probe::peer_certificate(&host, port, resolver)
        .await
        .with_context(|| format!("--endpoint {}", args.endpoint))?;
    let cert_pem = pem_encode("CERTIFICATE", captured.der.as_ref());
    let mut pems = Pems::default();
    pems.put(args.cert_out.as_deref(), &cert_pem, 0o644)?;
    // A certificate that does not parse is still written: it is what the peer presented, and
    // the reason it is refused is the report's first line.
    let parsed = ParsedCert::parse(captured.der.as_ref(), &algorithms());
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            report::emit_raw(&pems.printed)?;
            anyhow::bail!(
                "the certificate of {} is not attested: {err}",
                args.endpoint
            );
        }
    };
    let report = Report {
        source: report::Source::Endpoint(&args.endpoint),
        cert: &parsed,
        binding: parsed
            .check_binding()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        verdict: None,
        framing: Some(captured.framing),
        written: pems.written,
    };
    report::emit(&report, pems.printed, Output::new(args.json))
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let der = read_certificate(&args.cert)?;
    let text = crate::tools::json_argument(&args.verify, "--verify")?;
    let config = tng_config::parse_verify_json(&text, "--verify")?;
    let verifier = tng_attest::Verifier::new(&config, None)
        .await
        .context("--verify")?;
    let parsed = parse(der.as_ref())?;
    let binding = parsed
        .check_binding()
        .map(|_| ())
        .map_err(|e| e.to_string());
    let peer = PeerVerifier::new(std::sync::Arc::new(verifier), algorithms());
    let verdict = peer.appraise(der.as_ref()).await.map_err(|e| e.to_string());
    let refused = verdict.as_ref().err().cloned();
    let report = Report {
        source: report::Source::File(&args.cert),
        cert: &parsed,
        binding,
        verdict: Some(verdict),
        framing: None,
        written: Vec::new(),
    };
    report::emit(&report, String::new(), Output::new(args.json))?;
    match refused {
        Some(reason) => anyhow::bail!("attestation refused: {reason}"),
        None => Ok(()),
    }
}

fn build_attester(text: &str) -> anyhow::Result<std::sync::Arc<tng_attest::Attester>> {
    let text = crate::tools::json_argument(text, "--attest")?;
    let config = tng_config::parse_attest_json(&text, "--attest")?;
    let attester = tng_attest::Attester::new(&config, None).context("--attest")?;
    Ok(std::sync::Arc::new(attester))
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    security::provider().signature_verification_algorithms
}

fn parse(der: &[u8]) -> anyhow::Result<ParsedCert> {
    ParsedCert::parse(der, &algorithms()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `host:port`, or `[v6]:port`.
fn split_endpoint(endpoint: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .with_context(|| format!("--endpoint {endpoint}: must be host:port"))?;
    let port = port
        .parse()
        .with_context(|| format!("--endpoint {endpoint}: the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        anyhow::bail!("--endpoint {endpoint}: has no host");
    }
    Ok((host.to_owned(), port))
}

/// The first certificate of a PEM file, or the whole file as DER.
fn read_certificate(path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("--cert {}: cannot read", path.display()))?;
    if !bytes.trim_ascii_start().starts_with(b"-----") {
        return Ok(CertificateDer::from(bytes));
    }
    let mut reader = std::io::BufReader::new(bytes.as_slice());
    let first = rustls_pemfile::certs(&mut reader)
        .next()
        .with_context(|| format!("--cert {}: no CERTIFICATE in the PEM", path.display()))?
        .with_context(|| format!("--cert {}: malformed PEM", path.display()))?;
    Ok(first)
}

/// LF line endings, as upstream and openssl write them.
fn pem_encode(tag: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}

/// PEM blocks written to their files, or kept to be printed when no file was named.
#[derive(Default)]
struct Pems {
    written: Vec<PathBuf>,
    printed: String,
}

impl Pems {
    fn put(&mut self, path: Option<&Path>, pem: &str, mode: u32) -> anyhow::Result<()> {
        match path {
            Some(path) => {
                crate::tools::fs::write_atomic(path, pem.as_bytes(), mode)?;
                self.written.push(path.to_path_buf());
            }
            None => self.printed.push_str(pem),
        }
        Ok(())
    }
}
