//! The `/attestation` flow (openanolis `AttestationService::evaluate`): challenge check,
//! evidence verification against the runtime-data digest, policy appraisal, EAR token.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::challenge::Challenger;
use super::ear::{self, Submodule};
use super::keys::Signer;
use super::policy::{self, Policies, DEFAULT_POLICY_ID};
use super::problem::Problem;
use super::request::{self, Individual, RuntimeData};
use super::verifier;

pub struct Service {
    pub challenger: Challenger,
    pub signer: Signer,
    pub policies: Policies,
    pub token_seconds: u64,
    /// Issued tokens claim to be this much older than they are (`--token-backdate-seconds`).
    pub token_backdate_seconds: u64,
}

impl Service {
    /// Appraises an `/attestation` body and returns the signed EAR token.
    pub fn attest(&self, body: &[u8], now: u64) -> Result<String, Problem> {
        let request = request::parse(body)?;
        let policy_ids = if request.policy_ids.is_empty() {
            vec![DEFAULT_POLICY_ID.to_string()]
        } else {
            request.policy_ids
        };
        // Every requested policy must exist; the EAR carries one appraisal policy (the first),
        // which is the one evaluated.
        let mut policies = Vec::with_capacity(policy_ids.len());
        for id in &policy_ids {
            policies.push(
                self.policies
                    .get(id)
                    .ok_or_else(|| Problem::policy_not_found(id))?,
            );
        }
        for individual in &request.requests {
            verifier::tee_class(&individual.tee)
                .ok_or_else(|| Problem::unsupported_tee(&individual.tee))?;
            self.check_challenge(individual, now)?;
        }
        let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
        let mut submodules = Vec::with_capacity(request.requests.len());
        for individual in &request.requests {
            let class = verifier::tee_class(&individual.tee)
                .ok_or_else(|| Problem::unsupported_tee(&individual.tee))?;
            let index = per_class.entry(class).or_default();
            let name = format!("{class}{index}");
            *index += 1;
            submodules.push(appraise(individual, name, &policy_ids[0], &policies[0])?);
        }
        let claims = ear::claims(
            issued_at(now, self.token_backdate_seconds),
            self.token_seconds,
            &submodules,
        );
        Ok(ear::sign(&self.signer, &claims))
    }

    /// A string `challenge_token` in the structured runtime data must be one of our unexpired
    /// challenge JWTs; that is the freshness guarantee the verifier relies on.
    fn check_challenge(&self, individual: &Individual, now: u64) -> Result<(), Problem> {
        let RuntimeData::Structured(claims) = &individual.runtime_data else {
            return Ok(());
        };
        match claims.get("challenge_token").and_then(Value::as_str) {
            Some(token) => self
                .challenger
                .check(token, now)
                .map_err(Problem::invalid_challenge),
            None => Ok(()),
        }
    }
}

/// The `iat` of a token issued at `now` by a service started with `--token-backdate-seconds`.
fn issued_at(now: u64, backdate_seconds: u64) -> u64 {
    now.saturating_sub(backdate_seconds)
}

fn appraise(
    individual: &Individual,
    name: String,
    policy_id: &str,
    rego: &str,
) -> Result<Submodule, Problem> {
    let expected = verifier::expected_report_data(&individual.runtime_data, individual.hash)?;
    let verified = verifier::verify(&individual.tee, &individual.evidence, expected.as_deref())?;
    let runtime_data_claims = match &individual.runtime_data {
        RuntimeData::Structured(value) => value.clone(),
        RuntimeData::Raw(_) | RuntimeData::Absent => Value::Null,
    };
    let mut input = json!({"runtime_data_claims": runtime_data_claims});
    input[&individual.tee] = verified.claims.clone();
    let trust_claims = policy::evaluate(rego, &input)
        .map_err(|err| Problem::policy_failed(format!("policy {policy_id:?}: {err}")))?;
    let mut annotated = json!({
        "report_data": hex::encode(&verified.report_data),
        "runtime_data_claims": runtime_data_claims,
    });
    annotated[&individual.tee] = verified.claims;
    Ok(Submodule {
        name,
        trust_claims,
        policy_id: policy_id.to_string(),
        annotated_evidence: annotated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backdated_tokens_are_already_expired() {
        let now = 1_000_000;
        let claims = ear::claims(issued_at(now, 400), 300, &[]);
        assert_eq!(claims["iat"], now - 400);
        assert_eq!(claims["exp"], now - 100);
        assert_eq!(issued_at(now, 0), now);
        assert_eq!(issued_at(5, 400), 0);
    }
}
