//! The `sample` and `sampledevice` verifiers (openanolis rules, spec §A4.2) and the
//! runtime-data digest they compare `report_data` against (spec §A2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::problem::Problem;
use super::request::{HashAlgorithm, RuntimeData};

/// Device class of a TEE, which names its EAR submodule (`cpu0`, `gpu0`, …).
pub fn tee_class(tee: &str) -> Option<&'static str> {
    match tee {
        "sample" => Some("cpu"),
        "sampledevice" => Some("gpu"),
        _ => None,
    }
}

/// What the TEE's report data must equal: the raw bytes, or the digest of the RFC 8785
/// canonical JSON of the structured claims.
pub fn expected_report_data(
    runtime_data: &RuntimeData,
    hash: HashAlgorithm,
) -> Result<Option<Vec<u8>>, Problem> {
    match runtime_data {
        RuntimeData::Absent => Ok(None),
        RuntimeData::Raw(bytes) => Ok(Some(bytes.clone())),
        RuntimeData::Structured(value) => {
            let text = canonical_json(value)?;
            Ok(Some(match hash {
                HashAlgorithm::Sha256 => sha2::Sha256::digest(&text).to_vec(),
                HashAlgorithm::Sha384 => sha2::Sha384::digest(&text).to_vec(),
                HashAlgorithm::Sha512 => sha2::Sha512::digest(&text).to_vec(),
            }))
        }
    }
}

fn canonical_json(value: &Value) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, canon_json::CanonicalFormatter::new());
    value.serialize(&mut serializer).map_err(|err| {
        Problem::invalid_request(format!("runtime data has no canonical JSON form: {err}"))
    })?;
    Ok(out)
}

/// Claims a verifier hands to the policy, and the report data it authenticated.
pub struct Verified {
    pub claims: Value,
    pub report_data: Vec<u8>,
}

pub fn verify(tee: &str, evidence: &[u8], expected: Option<&[u8]>) -> Result<Verified, Problem> {
    let evidence: Map<String, Value> = serde_json::from_slice(evidence).map_err(|err| {
        Problem::invalid_evidence(format!("{tee} evidence is not a JSON object: {err}"))
    })?;
    let svn = evidence
        .get("svn")
        .filter(|svn| !svn.is_null())
        .ok_or_else(|| Problem::invalid_evidence(format!("{tee} evidence has no svn")))?;
    let report_data_text = evidence
        .get("report_data")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::invalid_evidence(format!("{tee} evidence has no report_data")))?;
    let report_data = STANDARD.decode(report_data_text).map_err(|_| {
        Problem::invalid_evidence(format!("{tee} report_data is not standard base64"))
    })?;
    if let Some(expected) = expected {
        if report_data != expected {
            return Err(Problem::binding_mismatch(format!(
                "{tee} report_data {} does not match the runtime data digest {}",
                hex::encode(&report_data),
                hex::encode(expected)
            )));
        }
    }
    let claims = match tee {
        "sample" => {
            let register = evidence
                .get("measure_register")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Problem::invalid_evidence("sample evidence has no measure_register".into())
                })?;
            match hex::decode(register) {
                Ok(bytes) if bytes.len() == 32 => {}
                _ => {
                    return Err(Problem::invalid_evidence(
                        "sample measure_register is not 32 bytes of hex".into(),
                    ))
                }
            }
            // Replaying an event log needs a log parser the sample stack does not have, so
            // evidence carrying one is refused rather than accepted unchecked.
            match evidence.get("cc_eventlog") {
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(Problem::invalid_evidence(
                        "sample cc_eventlog replay is not supported by this service".into(),
                    ))
                }
            }
            json!({
                "svn": svn,
                "report_data": report_data_text,
                "measure_register": register,
                "cc_eventlog": null,
            })
        }
        _ => json!({"svn": svn, "report_data": report_data_text}),
    };
    Ok(Verified {
        claims,
        report_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(report_data: &[u8], register: &str) -> Vec<u8> {
        json!({"cc_eventlog": null, "measure_register": register,
               "report_data": STANDARD.encode(report_data), "svn": "1"})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn canonical_digest_matches_a_hand_written_canonical_form() {
        let claims = json!({"hpke_key_config": {"expire_timestamp": 5, "encoded_key_config_list": "a+/="}, "challenge_token": "t"});
        let expected = sha2::Sha384::digest(
            br#"{"challenge_token":"t","hpke_key_config":{"encoded_key_config_list":"a+/=","expire_timestamp":5}}"#,
        );
        let got = expected_report_data(&RuntimeData::Structured(claims), HashAlgorithm::Sha384)
            .expect("ok")
            .expect("some");
        assert_eq!(got, expected.to_vec());
    }

    #[test]
    fn sample_rules() {
        let digest = [7u8; 48];
        let register = "00".repeat(32);
        let ok = verify("sample", &evidence(&digest, &register), Some(&digest)).expect("valid");
        assert_eq!(ok.claims["svn"], "1");
        assert_eq!(ok.report_data, digest);
        let mismatch = verify("sample", &evidence(&[8u8; 48], &register), Some(&digest));
        assert_eq!(
            mismatch.err().map(|p| p.code),
            Some("AS.EVIDENCE.BINDING_MISMATCH")
        );
        let short = verify("sample", &evidence(&digest, "00"), Some(&digest));
        assert_eq!(short.err().map(|p| p.code), Some("AS.EVIDENCE.INVALID"));
        let no_svn = br#"{"report_data":"AA==","measure_register":""}"#;
        assert!(verify("sample", no_svn, None).is_err());
    }
}
