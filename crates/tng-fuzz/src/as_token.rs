//! Attestation Service tokens as they arrive from a peer: in a key-config response (passport),
//! in the tunnel metadata (client attestation), or back from the AS (background check).

use serde_json::{Map, Value};
use tng_attest::verify::appraisal;
use tng_attest::TokenVerifier;

use crate::fixtures;

/// Input: one selector byte, then the rest. Even selector: the rest is a token (compact JWS
/// text), verified with the token's own key (`skip_as_token_cert_verify`) and against the
/// fixture AS CA. Odd selector: the rest is a claims payload, run through the checks that
/// follow the signature. With `skip_as_token_cert_verify` a peer signs whatever claims it
/// likes, so these bytes are peer-controlled too; feeding them directly spares the fuzzer
/// from forging a signature on every input.
pub fn as_token(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        let token = String::from_utf8_lossy(rest);
        verify(fixtures::skip_verifier(), &token);
        verify(fixtures::anchored_verifier(), &token);
    } else if let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(rest) {
        appraise(&claims);
    }
}

fn verify(verifier: &TokenVerifier, token: &str) {
    let expected = fixtures::expected_claims();
    if let Ok(verified) = verifier.verify_at(token, expected, fixtures::verify_time()) {
        // A verified token echoes every expected claim and names every configured policy.
        for (key, value) in expected {
            assert_eq!(verified.runtime_data.get(key), Some(value));
        }
        for id in verifier.policy_ids() {
            assert!(verified.policy_ids.contains(id));
        }
    }
}

/// The post-signature steps of `TokenVerifier::verify_at`, in its order.
fn appraise(claims: &Map<String, Value>) {
    let Ok(profile) = appraisal::profile(claims) else {
        return;
    };
    if let Ok(runtime_data) = appraisal::runtime_data(claims, profile) {
        let _ = appraisal::check_subset(fixtures::expected_claims(), &runtime_data);
    }
    if let Ok(ids) = appraisal::policy_ids(claims, profile) {
        let _ = appraisal::check_policy_ids(&[fixtures::POLICY_ID.to_owned()], &ids);
    }
}
