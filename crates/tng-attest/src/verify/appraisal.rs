//! What the token says about the attester: profile, runtime-data binding, per-device appraisal
//! status and appraisal policy ids.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::VerifyError;

/// The EAR profile of Trustee tokens.
pub const EAR_PROFILE: &str = "tag:github.com,2024:confidential-containers/Trustee";

const EAR_RUNTIME_DATA: &str = "/submods/cpu0/ear.veraison.annotated-evidence/runtime_data_claims";
const SIMPLE_RUNTIME_DATA: &str = "/customized_claims/runtime_data";

/// Which of the Attestation Service's token formats a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProfile {
    /// EAR (`eat_profile` = [`EAR_PROFILE`]), the default broker.
    Ear,
    /// The "Simple" broker (no `eat_profile`).
    Simple,
}

pub fn profile(claims: &Map<String, Value>) -> Result<TokenProfile, VerifyError> {
    match claims.get("eat_profile") {
        None => Ok(TokenProfile::Simple),
        Some(Value::String(p)) if p == EAR_PROFILE => Ok(TokenProfile::Ear),
        Some(other) => Err(VerifyError::UnknownProfile(match other {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })),
    }
}

/// The runtime-data claims object the token echoes.
pub fn runtime_data(
    claims: &Map<String, Value>,
    profile: TokenProfile,
) -> Result<Map<String, Value>, VerifyError> {
    let path = match profile {
        TokenProfile::Ear => EAR_RUNTIME_DATA,
        TokenProfile::Simple => SIMPLE_RUNTIME_DATA,
    };
    let root = Value::Object(claims.clone());
    match root.pointer(path) {
        Some(Value::Object(map)) => Ok(map.clone()),
        _ => Err(VerifyError::RuntimeDataMissing(
            path.trim_start_matches('/').replace('/', "."),
        )),
    }
}

/// Every expected key must be in `actual` with an equal JSON value (extra keys are fine).
pub fn check_subset(
    expected: &Map<String, Value>,
    actual: &Map<String, Value>,
) -> Result<(), VerifyError> {
    for (key, want) in expected {
        match actual.get(key) {
            None => {
                return Err(VerifyError::RuntimeDataMismatch(format!(
                    "{key} missing from the token"
                )))
            }
            Some(got) if got != want => {
                return Err(VerifyError::RuntimeDataMismatch(format!("{key} differs")))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The appraisal policy ids of the token; for EAR also checks every submodule is `affirming`
/// and that they agree on one policy id.
pub fn policy_ids(
    claims: &Map<String, Value>,
    profile: TokenProfile,
) -> Result<BTreeSet<String>, VerifyError> {
    match profile {
        TokenProfile::Ear => ear_policy_ids(claims),
        TokenProfile::Simple => Ok(claims
            .get("evaluation-reports")
            .and_then(Value::as_array)
            .map(|reports| {
                reports
                    .iter()
                    .filter_map(|r| r.get("policy-id").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()),
    }
}

fn ear_policy_ids(claims: &Map<String, Value>) -> Result<BTreeSet<String>, VerifyError> {
    let submods = match claims.get("submods") {
        Some(Value::Object(submods)) if !submods.is_empty() => submods,
        _ => return Err(VerifyError::NoSubmodules),
    };
    let mut ids = BTreeSet::new();
    for (name, submod) in submods {
        let malformed = |reason: &str| VerifyError::MalformedSubmodule {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let submod = submod
            .as_object()
            .ok_or_else(|| malformed("not an object"))?;
        let policy_id = submod
            .get("ear.appraisal-policy-id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no ear.appraisal-policy-id"))?;
        let status = submod
            .get("ear.status")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no ear.status"))?;
        if !submod.contains_key("ear.trustworthiness-vector") {
            return Err(malformed("no ear.trustworthiness-vector"));
        }
        if status != "affirming" {
            return Err(VerifyError::StatusNotAffirming {
                name: name.clone(),
                status: status.to_owned(),
            });
        }
        ids.insert(policy_id.to_owned());
    }
    if ids.len() != 1 {
        return Err(VerifyError::AmbiguousPolicyIds(ids.into_iter().collect()));
    }
    Ok(ids)
}

/// Every configured policy id must be among the token's.
pub fn check_policy_ids(
    configured: &[String],
    found: &BTreeSet<String>,
) -> Result<(), VerifyError> {
    match configured.iter().find(|id| !found.contains(*id)) {
        Some(missing) => Err(VerifyError::PolicyIdMissing(missing.clone())),
        None => Ok(()),
    }
}
