//! Remote attestation at start-up: building the attester (`attest`) and the verifier
//! (`verify`) from the configuration, with the checks upstream makes before serving.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// The Attestation Agent socket must exist at start-up: a gateway that cannot prove its TEE
/// must not start serving. Checked with the configuration, before anything is bound.
pub fn check_agent_socket(field: &str, config: &tng_config::Attest) -> anyhow::Result<()> {
    if config.aa_provider == tng_config::AaProvider::Coco {
        let path = config.aa_addr.trim_start_matches("unix://");
        if !Path::new(path).exists() {
            anyhow::bail!("{field}.attest.aa_addr: Attestation Agent socket file {path} not found");
        }
    }
    Ok(())
}

/// The attesting side: an egress's `attest`, or an ingress's for client attestation.
pub fn attester(
    field: &str,
    config: &tng_config::Attest,
    so_mark: Option<u32>,
) -> anyhow::Result<Arc<tng_attest::Attester>> {
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

/// The reason label of a failed verification (`tng_attestation_failures_total{reason}`).
pub fn failure_of(err: &tng_attest::Error) -> tng_telemetry::AttestationFailure {
    use tng_attest::{AsError, Error, VerifyError};
    use tng_telemetry::AttestationFailure as F;
    match err {
        Error::As(AsError::Unreachable { .. }) => F::ServiceUnavailable,
        Error::As(AsError::Status { status, .. }) if status.is_server_error() => {
            F::ServiceUnavailable
        }
        Error::As(AsError::Status { .. } | AsError::Evidence(_)) => F::InvalidEvidence,
        Error::Verify(VerifyError::Expired { .. } | VerifyError::NotYetValid { .. }) => F::Expired,
        Error::Verify(VerifyError::RuntimeDataMissing(_) | VerifyError::RuntimeDataMismatch(_)) => {
            F::BindingMismatch
        }
        Error::Verify(
            VerifyError::StatusNotAffirming { .. }
            | VerifyError::PolicyIdMissing(_)
            | VerifyError::AmbiguousPolicyIds(_),
        ) => F::PolicyRejected,
        Error::Verify(_) | Error::Evidence(_) => F::InvalidEvidence,
        _ => F::Other,
    }
}

/// The same for a rats-TLS peer certificate.
pub fn peer_failure_of(err: &tng_ratstls::Error) -> tng_telemetry::AttestationFailure {
    use tng_ratstls::Error;
    use tng_telemetry::AttestationFailure as F;
    match err {
        Error::BindingMismatch { .. } => F::BindingMismatch,
        Error::Attestation(err) => failure_of(err),
        Error::Build(_) => F::Other,
        _ => F::InvalidEvidence,
    }
}
