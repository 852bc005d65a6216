//! Remote attestation at start-up: building the attester (egress `attest`) and the verifier
//! (ingress `verify`) from the configuration, with the checks upstream makes before serving.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// The egress side. The Attestation Agent socket must exist now: a gateway that cannot prove
/// its TEE must not start serving keys.
pub fn attester(
    field: &str,
    config: &tng_config::Attest,
    so_mark: Option<u32>,
) -> anyhow::Result<Arc<tng_attest::Attester>> {
    if config.aa_provider == tng_config::AaProvider::Coco {
        let path = config.aa_addr.trim_start_matches("unix://");
        if !Path::new(path).exists() {
            anyhow::bail!("{field}.attest.aa_addr: Attestation Agent socket file {path} not found");
        }
    }
    let attester =
        tng_attest::Attester::new(config, so_mark).with_context(|| format!("{field}.attest"))?;
    Ok(Arc::new(attester))
}

/// The ingress side. Fetching the Attestation Service's signing certificates happens here, so
/// an unreachable or misconfigured AS stops start-up instead of failing every request later.
pub async fn verifier(
    field: &str,
    config: &tng_config::Verify,
    so_mark: Option<u32>,
) -> anyhow::Result<Arc<tng_attest::Verifier>> {
    let verifier = tng_attest::Verifier::new(config, so_mark)
        .await
        .with_context(|| format!("{field}.verify"))?;
    Ok(Arc::new(verifier))
}
