//! What the ingress reads from an egress's key-config endpoint (and the egress from an
//! ingress's key-config and background-check requests): the JSON API bodies, the
//! `application/ohttp-keys` list inside them and the CoCo evidence wrapper they carry.

use serde_json::Value;
use tng_attest::claims::canonical_claims;
use tng_attest::CocoEvidence;
use tng_ohttp::api::{
    AttestationInfo, ChallengeResponse, ErrorBody, KeyConfigRequest, KeyConfigResponse, OhttpApi,
    VerifyRequest, VerifyResponse,
};
use tng_ohttp::keys::{decode_key_config_list, encode_key_config_list};

/// Input: either a JSON API body or a binary key list; both readings are tried.
pub fn key_config(data: &[u8]) {
    key_list(data);
    let _ = OhttpApi::parse(data);
    if let Ok(response) = serde_json::from_slice::<KeyConfigResponse>(data) {
        if let Ok(configs) = response.hpke_key_config.decode() {
            let reencoded = encode_key_config_list(&configs);
            assert_eq!(decode_key_config_list(&reencoded).as_ref(), Ok(&configs));
        }
        if let Some(info) = &response.attestation_info {
            attestation_info(info);
        }
        // The ingress binds the token to exactly this serialization.
        let _ = serde_json::to_value(&response.hpke_key_config);
    }
    let _ = serde_json::from_slice::<KeyConfigRequest>(data);
    let _ = serde_json::from_slice::<ChallengeResponse>(data);
    let _ = serde_json::from_slice::<VerifyResponse>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    if let Ok(request) = serde_json::from_slice::<VerifyRequest>(data) {
        evidence(&request.evidence);
    }
}

/// The binary list: whatever decodes must re-encode to a list that decodes to the same keys.
fn key_list(bytes: &[u8]) {
    if let Ok(configs) = decode_key_config_list(bytes) {
        let reencoded = encode_key_config_list(&configs);
        assert_eq!(
            decode_key_config_list(&reencoded).as_ref(),
            Ok(&configs),
            "key configs do not survive re-encoding"
        );
    }
}

fn attestation_info(info: &AttestationInfo) {
    match info {
        AttestationInfo::Passport { .. } => {}
        AttestationInfo::BackgroundCheck { evidence: e, .. } => evidence(e),
    }
}

/// The wrapper as both sides pick it apart before asking the Attestation Service.
fn evidence(value: &Value) {
    let Ok(evidence) = serde_json::from_value::<CocoEvidence>(value.clone()) else {
        return;
    };
    let _ = evidence.evidence_bytes();
    let _ = evidence.additional_devices();
    let _ = evidence.hash_algo();
    if let Ok(claims) = evidence.runtime_data_claims() {
        let _ = canonical_claims(&claims);
    }
}
