//! `/attestation` request bodies: the v1.6.0 list form and the v1.5.2 flat form (spec §A6.2,
//! §A6.3), reduced to one shape.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::problem::Problem;

#[derive(Debug)]
pub struct Attestation {
    pub requests: Vec<Individual>,
    pub policy_ids: Vec<String>,
}

#[derive(Debug)]
pub struct Individual {
    pub tee: String,
    pub evidence: Vec<u8>,
    pub runtime_data: RuntimeData,
    pub hash: HashAlgorithm,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeData {
    Absent,
    Raw(Vec<u8>),
    Structured(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireRuntimeData {
    Raw(String),
    Structured(Value),
}

/// `init_data` (and v1.5.2's `init_data_hash_algorithm`) are accepted and ignored: the sample
/// verifiers upstream do not check init data either.
#[derive(Deserialize)]
struct WireIndividual {
    tee: String,
    evidence: String,
    #[serde(default)]
    runtime_data: Option<WireRuntimeData>,
    #[serde(default)]
    runtime_data_hash_algorithm: Option<String>,
}

#[derive(Deserialize)]
struct WireV160 {
    verification_requests: Vec<WireIndividual>,
    #[serde(default)]
    policy_ids: Vec<String>,
}

#[derive(Deserialize)]
struct WireV152 {
    #[serde(flatten)]
    request: WireIndividual,
    #[serde(default)]
    policy_ids: Vec<String>,
}

pub fn parse(body: &[u8]) -> Result<Attestation, Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| Problem::invalid_request(format!("body is not JSON: {err}")))?;
    let (wire, policy_ids) = if value.get("verification_requests").is_some() {
        let v160: WireV160 = serde_json::from_value(value)
            .map_err(|err| Problem::invalid_request(err.to_string()))?;
        (v160.verification_requests, v160.policy_ids)
    } else {
        let v152: WireV152 = serde_json::from_value(value)
            .map_err(|err| Problem::invalid_request(err.to_string()))?;
        (vec![v152.request], v152.policy_ids)
    };
    if wire.is_empty() {
        return Err(Problem::invalid_request(
            "verification_requests is empty".into(),
        ));
    }
    let requests = wire
        .into_iter()
        .map(Individual::try_from)
        .collect::<Result<_, _>>()?;
    Ok(Attestation {
        requests,
        policy_ids,
    })
}

impl TryFrom<WireIndividual> for Individual {
    type Error = Problem;

    fn try_from(wire: WireIndividual) -> Result<Self, Problem> {
        let evidence = decode_base64(&wire.evidence)
            .ok_or_else(|| Problem::invalid_request("evidence is not base64url".into()))?;
        let runtime_data = match wire.runtime_data {
            None => RuntimeData::Absent,
            Some(WireRuntimeData::Structured(value)) => RuntimeData::Structured(value),
            Some(WireRuntimeData::Raw(text)) => {
                RuntimeData::Raw(decode_base64(&text).ok_or_else(|| {
                    Problem::invalid_request("runtime_data.raw is not base64url".into())
                })?)
            }
        };
        let hash = match wire.runtime_data_hash_algorithm.as_deref() {
            None | Some("sha384") => HashAlgorithm::Sha384,
            Some("sha256") => HashAlgorithm::Sha256,
            Some("sha512") => HashAlgorithm::Sha512,
            Some(other) => {
                return Err(Problem::invalid_request(format!(
                    "unsupported runtime_data_hash_algorithm {other:?}"
                )))
            }
        };
        Ok(Self {
            tee: wire.tee,
            evidence,
            runtime_data,
            hash,
        })
    }
}

/// Evidence is specified as base64url without padding; padded and standard alphabets are
/// accepted too so that a lenient client is not refused for its encoding alone.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| STANDARD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v160_body_with_device_entry() {
        let body = json!({
            "verification_requests": [
                {"tee": "sample", "evidence": URL_SAFE_NO_PAD.encode(b"{}"),
                 "runtime_data": {"structured": {"a": 1}}, "init_data": null,
                 "runtime_data_hash_algorithm": "sha384"},
                {"tee": "sampledevice", "evidence": URL_SAFE_NO_PAD.encode(b"{}"),
                 "runtime_data": null, "init_data": null, "runtime_data_hash_algorithm": null}
            ],
            "policy_ids": []
        });
        let parsed = parse(body.to_string().as_bytes()).expect("valid");
        assert_eq!(parsed.requests.len(), 2);
        assert_eq!(
            parsed.requests[0].runtime_data,
            RuntimeData::Structured(json!({"a": 1}))
        );
        assert_eq!(parsed.requests[1].runtime_data, RuntimeData::Absent);
        assert_eq!(parsed.requests[1].hash, HashAlgorithm::Sha384);
        assert!(parsed.policy_ids.is_empty());
    }

    #[test]
    fn v152_flat_body() {
        let body = json!({
            "tee": "sample", "evidence": URL_SAFE_NO_PAD.encode(b"{}"),
            "runtime_data": {"structured": {"a": 1}}, "init_data": null,
            "runtime_data_hash_algorithm": "sha256", "init_data_hash_algorithm": null,
            "policy_ids": ["p"]
        });
        let parsed = parse(body.to_string().as_bytes()).expect("valid");
        assert_eq!(parsed.requests[0].hash, HashAlgorithm::Sha256);
        assert_eq!(parsed.policy_ids, vec!["p".to_string()]);
    }

    #[test]
    fn missing_tee_is_named() {
        let problem = parse(br#"{"evidence": ""}"#).expect_err("invalid");
        assert_eq!(problem.status, 400);
        assert!(
            problem.detail.contains("missing field `tee`"),
            "{problem:?}"
        );
    }
}
