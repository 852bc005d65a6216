//! EAR attestation results (draft-fv-rats-ear) as the trustee EAR broker issues them: AR4SI
//! tiers, per-device submodules, ES256 with the signer's JWK and x5c chain in the header.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::jws;
use super::keys::Signer;

pub const EAT_PROFILE: &str = "tag:github.com,2024:confidential-containers/Trustee";

/// AR4SI trustworthiness tiers, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    None,
    Affirming,
    Warning,
    Contraindicated,
}

impl Tier {
    /// Tier of one claim value; negative values mirror the positive bands.
    pub fn of(value: i64) -> Self {
        match value {
            -1..=1 => Tier::None,
            2..=31 | -32..=-2 => Tier::Affirming,
            32..=95 | -96..=-33 => Tier::Warning,
            _ => Tier::Contraindicated,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Affirming => "affirming",
            Tier::Warning => "warning",
            Tier::Contraindicated => "contraindicated",
        }
    }
}

/// One appraised device (`cpu0`, `gpu0`, …).
pub struct Submodule {
    pub name: String,
    pub trust_claims: BTreeMap<&'static str, i64>,
    pub policy_id: String,
    pub annotated_evidence: Value,
}

impl Submodule {
    fn to_json(&self) -> Value {
        let status = self
            .trust_claims
            .values()
            .map(|value| Tier::of(*value))
            .max()
            .unwrap_or(Tier::None);
        let vector: Map<String, Value> = self
            .trust_claims
            .iter()
            .map(|(name, value)| (name.replace('_', "-"), json!(value)))
            .collect();
        json!({
            "ear.status": status.name(),
            "ear.trustworthiness-vector": vector,
            "ear.appraisal-policy-id": self.policy_id,
            "ear.veraison.annotated-evidence": self.annotated_evidence,
        })
    }
}

pub fn claims(now: u64, lifetime_seconds: u64, submodules: &[Submodule]) -> Value {
    let submods: Map<String, Value> = submodules
        .iter()
        .map(|submodule| (submodule.name.clone(), submodule.to_json()))
        .collect();
    json!({
        "eat_profile": EAT_PROFILE,
        "iat": now,
        "exp": now + lifetime_seconds,
        "ear.verifier-id": {
            "developer": "tng-devkit sample attestation service",
            "build": concat!("tng-devkit ", env!("CARGO_PKG_VERSION")),
        },
        "submods": submods,
    })
}

/// The JOSE header: the signer's public key as a JWK whose `x5c` carries the chain as
/// base64url without padding, the encoding openanolis emits and TNG decodes.
pub fn header(signer: &Signer) -> Value {
    let point = signer.key.verifying_key().to_encoded_point(false);
    let x = point.x().map(|x| jws::b64url(x)).unwrap_or_default();
    let y = point.y().map(|y| jws::b64url(y)).unwrap_or_default();
    let x5c: Vec<String> = signer
        .chain_der
        .iter()
        .map(|der| jws::b64url(der))
        .collect();
    json!({
        "typ": "JWT",
        "alg": "ES256",
        "jwk": {"kty": "EC", "crv": "P-256", "alg": "ES256", "x": x, "y": y, "x5c": x5c},
    })
}

pub fn sign(signer: &Signer, claims: &Value) -> String {
    jws::sign_es256(&header(signer), claims, &signer.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_and_most_severe_status() {
        assert_eq!(Tier::of(0), Tier::None);
        assert_eq!(Tier::of(2), Tier::Affirming);
        assert_eq!(Tier::of(31), Tier::Affirming);
        assert_eq!(Tier::of(32), Tier::Warning);
        assert_eq!(Tier::of(96), Tier::Contraindicated);
        assert_eq!(Tier::of(-97), Tier::Contraindicated);
        let submodule = Submodule {
            name: "cpu0".into(),
            trust_claims: BTreeMap::from([("file_system", 2), ("hardware", 97)]),
            policy_id: "p".into(),
            annotated_evidence: json!({}),
        };
        let json = submodule.to_json();
        assert_eq!(json["ear.status"], "contraindicated");
        assert_eq!(
            json["ear.trustworthiness-vector"],
            json!({"file-system": 2, "hardware": 97})
        );
    }
}
