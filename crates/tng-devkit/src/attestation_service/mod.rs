//! A RESTful Attestation Service in the openanolis trustee flavour, with the `sample` verifiers,
//! Rego policies and EAR tokens, for machines without TEE hardware (spec §A6, §A8).

mod challenge;
mod ear;
mod evaluate;
mod jws;
mod keys;
mod policy;
mod problem;
mod request;
mod routes;
mod verifier;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the ready line shows the real one).
    #[arg(long)]
    listen: SocketAddr,
    /// A Rego policy (package `policy`) to install as `ID`; repeatable. `default` may be
    /// replaced; it affirms valid sample evidence otherwise.
    #[arg(long = "policy", value_name = "ID=FILE.rego")]
    policies: Vec<String>,
    /// Directory receiving `ca.pem` and `chain.pem` (default: a new directory under $TMPDIR).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Lifetime of issued attestation tokens, in minutes.
    #[arg(long, default_value_t = 5)]
    token_minutes: u64,
    /// Test knob: date issued tokens (`iat`, and so `exp`) this many seconds in the past.
    /// More than the token lifetime plus a verifier's leeway (60 s) yields tokens that are
    /// already expired when issued, for fail-closed tests.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    token_backdate_seconds: u64,
    /// Keep the challenge key and the token-signer key and chain in `<workdir>/keys.json`:
    /// reuse them when that file exists, create it otherwise. A restarted service then keeps
    /// its identity (as the real AS does with configured key paths) and verifiers that fetched
    /// `/certificate` before the restart still trust it. Requires --workdir.
    #[arg(long, requires = "workdir")]
    persist_keys: bool,
}

/// Serves until SIGTERM/SIGINT, then lets open connections finish for up to 3 s.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let policies = policy::Policies::with_default();
    for spec in &args.policies {
        let (id, file) = spec
            .split_once('=')
            .with_context(|| format!("--policy {spec:?}: expected ID=FILE.rego"))?;
        let rego = std::fs::read_to_string(file)
            .with_context(|| format!("--policy {spec:?}: cannot read {file}"))?;
        policies
            .set(id, rego)
            .map_err(|err| anyhow::anyhow!("--policy {spec:?}: {err}"))?;
    }
    let workdir = args.workdir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tng-devkit-as-{}", std::process::id()))
    });
    let persist = args.persist_keys.then(|| workdir.join("keys.json"));
    let (challenge_key, signer) = tokio::task::spawn_blocking(move || match persist {
        Some(path) => keys::load_or_create(&path),
        None => anyhow::Ok((keys::challenge_key()?, keys::signer()?)),
    })
    .await??;
    let files = signer.write_files(&workdir)?;
    let service = Arc::new(evaluate::Service {
        challenger: challenge::Challenger::new(challenge_key),
        signer,
        policies,
        token_seconds: args.token_minutes.saturating_mul(60),
        token_backdate_seconds: args.token_backdate_seconds,
    });

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    // The ready line is the only stdout output; the certificate paths go to stderr.
    eprintln!("ca certificate: {}", files.ca.display());
    eprintln!("certificate chain: {}", files.chain.display());
    crate::http_server::serve_until_signal(
        listener,
        &format!("attestation service listening on {local}"),
        move |req| routes::handle(service.clone(), req),
    )
    .await
}
