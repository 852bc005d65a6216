//! Known-answer tests of the token verifier (spec §A8), with tokens built and signed here.

mod common;

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use tng_attest::{TokenProfile, TokenVerifier, Trust, TrustAnchors, VerifyError};

const CHALLENGE: &str = "eyJhbGciOiJSUzM4NCJ9.eyJub25jZSI6IngifQ.c2ln";

fn verifier_for(chain: &SignerChain, policy_ids: &[&str]) -> TokenVerifier {
    let anchors = TrustAnchors::from_certs(vec![chain.ca_der.clone()]).expect("anchor");
    TokenVerifier::new(
        Trust::Anchors(anchors),
        policy_ids.iter().map(|s| s.to_string()).collect(),
    )
}

fn expected() -> serde_json::Map<String, Value> {
    as_map(&server_runtime_data(CHALLENGE))
}

fn valid_ear(chain: &SignerChain) -> String {
    chain.sign(&ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 300,
    ))
}

#[test]
fn valid_ear_token_passes() {
    let chain = SignerChain::generate("AS");
    let token = valid_ear(&chain);
    let verified = verifier_for(&chain, &["default"])
        .verify(&token, &expected())
        .expect("a valid token verifies");
    assert_eq!(verified.profile, TokenProfile::Ear);
    assert!(verified.exp > now());
    assert_eq!(verified.runtime_data, expected());
    assert_eq!(
        verified.policy_ids.into_iter().collect::<Vec<_>>(),
        vec!["default".to_owned()]
    );
    assert_eq!(verified.claims["eat_profile"], EAR_PROFILE);
    assert_eq!(verified.header["alg"], "ES256");
    assert_eq!(verified.token, token);
}

#[test]
fn passport_expectation_ignores_the_challenge_and_extra_keys() {
    let chain = SignerChain::generate("AS");
    let token = valid_ear(&chain);
    let mut passport_expected = expected();
    passport_expected.remove("challenge_token");
    verifier_for(&chain, &[])
        .verify(&token, &passport_expected)
        .expect("subset check with only hpke_key_config");
}

#[test]
fn wrong_signer_is_not_trusted() {
    let trusted = SignerChain::generate("trusted");
    let other = SignerChain::generate("other");
    let err = verifier_for(&trusted, &["default"])
        .verify(&valid_ear(&other), &expected())
        .expect_err("a token of another CA must fail");
    assert!(matches!(err, VerifyError::SignerNotTrusted(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("token signer is not trusted"),
        "{err}"
    );
}

#[test]
fn jwk_not_matching_the_certificate_fails() {
    let trusted = SignerChain::generate("trusted");
    let other = SignerChain::generate("other");
    // The trusted chain in x5c, but the key (and signature) of another signer.
    let mut jwk = other.jwk(false);
    jwk["x5c"] = trusted.jwk(false)["x5c"].clone();
    let token = other.sign_with_header(
        &json!({"typ": "JWT", "alg": "ES256", "jwk": jwk}),
        &ear_claims(
            &server_runtime_data(CHALLENGE),
            "affirming",
            "default",
            now() + 300,
        ),
    );
    let err = verifier_for(&trusted, &[])
        .verify(&token, &expected())
        .expect_err("mismatched jwk");
    assert_eq!(err, VerifyError::JwkCertificateMismatch);
    assert!(
        err.to_string().contains("token signer is not trusted"),
        "{err}"
    );
}

#[test]
fn tampered_claim_fails_the_signature() {
    let chain = SignerChain::generate("AS");
    let token = valid_ear(&chain);
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["runtime_data_claims"]
        ["hpke_key_config"]["expire_timestamp"] = json!(4000000000u64);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let err = verifier_for(&chain, &["default"])
        .verify(&tampered, &expected())
        .expect_err("tampered payload");
    assert_eq!(err, VerifyError::BadSignature);
    assert_eq!(err.to_string(), "token signature is invalid");
}

#[test]
fn expired_token_fails_and_leeway_is_60_seconds() {
    let chain = SignerChain::generate("AS");
    let verifier = verifier_for(&chain, &["default"]);
    let rd = server_runtime_data(CHALLENGE);
    let stale = chain.sign(&ear_claims(&rd, "affirming", "default", now() - 120));
    let err = verifier.verify(&stale, &expected()).expect_err("expired");
    assert!(matches!(err, VerifyError::Expired { .. }), "{err:?}");
    assert!(err.to_string().starts_with("token expired"), "{err}");

    let within_leeway = chain.sign(&ear_claims(&rd, "affirming", "default", now() - 30));
    verifier
        .verify(&within_leeway, &expected())
        .expect("30 s past exp is within the leeway");

    // The same check at an explicit time.
    let token = valid_ear(&chain);
    let later = SystemTime::now() + Duration::from_secs(400);
    assert!(matches!(
        verifier.verify_at(&token, &expected(), later),
        Err(VerifyError::Expired { .. })
    ));
}

#[test]
fn missing_exp_and_future_nbf_fail() {
    let chain = SignerChain::generate("AS");
    let verifier = verifier_for(&chain, &[]);
    let mut claims = ear_claims(&server_runtime_data(CHALLENGE), "affirming", "default", 0);
    claims.as_object_mut().expect("object").remove("exp");
    let err = verifier
        .verify(&chain.sign(&claims), &expected())
        .expect_err("no exp");
    assert_eq!(err, VerifyError::MissingExpiry);

    let mut claims = ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 900,
    );
    claims["nbf"] = json!(now() + 600);
    let err = verifier
        .verify(&chain.sign(&claims), &expected())
        .expect_err("nbf");
    assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err:?}");
}

#[test]
fn non_affirming_submodule_fails() {
    let chain = SignerChain::generate("AS");
    let token = chain.sign(&ear_claims(
        &server_runtime_data(CHALLENGE),
        "contraindicated",
        "default",
        now() + 300,
    ));
    let err = verifier_for(&chain, &["default"])
        .verify(&token, &expected())
        .expect_err("contraindicated");
    assert_eq!(err.to_string(), "submodule cpu0 status is contraindicated");

    // A second device that is only `warning` fails too.
    let mut claims = ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 300,
    );
    let mut gpu = claims["submods"]["cpu0"].clone();
    gpu["ear.status"] = json!("warning");
    claims["submods"]["gpu0"] = gpu;
    let err = verifier_for(&chain, &["default"])
        .verify(&chain.sign(&claims), &expected())
        .expect_err("warning");
    assert_eq!(err.to_string(), "submodule gpu0 status is warning");
}

#[test]
fn missing_policy_id_fails() {
    let chain = SignerChain::generate("AS");
    let err = verifier_for(&chain, &["default", "strict"])
        .verify(&valid_ear(&chain), &expected())
        .expect_err("strict is not in the token");
    assert_eq!(err, VerifyError::PolicyIdMissing("strict".into()));
    assert_eq!(err.to_string(), "policy id strict missing from the token");
}

#[test]
fn submodules_must_agree_on_one_policy_id() {
    let chain = SignerChain::generate("AS");
    let mut claims = ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 300,
    );
    let mut gpu = claims["submods"]["cpu0"].clone();
    gpu["ear.appraisal-policy-id"] = json!("gpu-policy");
    claims["submods"]["gpu0"] = gpu;
    let err = verifier_for(&chain, &[])
        .verify(&chain.sign(&claims), &expected())
        .expect_err("two policy ids");
    assert!(
        matches!(err, VerifyError::AmbiguousPolicyIds(ref ids) if ids.len() == 2),
        "{err:?}"
    );

    let mut claims = ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 300,
    );
    claims["submods"]["cpu0"]
        .as_object_mut()
        .expect("object")
        .remove("ear.trustworthiness-vector");
    let err = verifier_for(&chain, &[])
        .verify(&chain.sign(&claims), &expected())
        .expect_err("no trust vector");
    assert!(
        matches!(err, VerifyError::MalformedSubmodule { .. }),
        "{err:?}"
    );
}

#[test]
fn runtime_data_mismatch_fails() {
    let chain = SignerChain::generate("AS");
    let verifier = verifier_for(&chain, &["default"]);
    let token = valid_ear(&chain);

    let mut other_key = expected();
    other_key["hpke_key_config"]["encoded_key_config_list"] = json!("AAAA");
    let err = verifier
        .verify(&token, &other_key)
        .expect_err("key differs");
    assert_eq!(
        err.to_string(),
        "runtime data mismatch: hpke_key_config differs"
    );

    let mut other_challenge = expected();
    other_challenge["challenge_token"] = json!("another.challenge.jwt");
    let err = verifier
        .verify(&token, &other_challenge)
        .expect_err("challenge differs");
    assert_eq!(
        err.to_string(),
        "runtime data mismatch: challenge_token differs"
    );

    // The token was made for passport (no challenge) but a challenge is expected.
    let mut rd = server_runtime_data(CHALLENGE);
    rd.as_object_mut()
        .expect("object")
        .remove("challenge_token");
    let passport = chain.sign(&ear_claims(&rd, "affirming", "default", now() + 300));
    let err = verifier
        .verify(&passport, &expected())
        .expect_err("no challenge");
    assert_eq!(
        err.to_string(),
        "runtime data mismatch: challenge_token missing from the token"
    );

    // An integer compared with the same digits as a string is not equal JSON.
    let mut stringly = expected();
    stringly["hpke_key_config"]["expire_timestamp"] = json!("3688063588");
    assert!(verifier.verify(&token, &stringly).is_err());
}

#[test]
fn x5c_in_standard_base64_is_accepted() {
    let chain = SignerChain::generate("AS");
    let token = chain.sign_with_header(
        &json!({"typ": "JWT", "alg": "ES256", "jwk": chain.jwk(true)}),
        &ear_claims(
            &server_runtime_data(CHALLENGE),
            "affirming",
            "default",
            now() + 300,
        ),
    );
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64"),
    )
    .expect("json");
    let first = header["jwk"]["x5c"][0].as_str().expect("x5c string");
    assert!(
        first.contains('\n')
            && (first.contains('+') || first.contains('/') || first.ends_with('='))
    );
    verifier_for(&chain, &["default"])
        .verify(&token, &expected())
        .expect("standard base64 x5c with line breaks");
}

#[test]
fn skip_mode_uses_the_embedded_jwk_as_is() {
    let chain = SignerChain::generate("AS");
    let mut jwk = chain.jwk(false);
    jwk.as_object_mut().expect("object").remove("x5c");
    let token = chain.sign_with_header(
        &json!({"typ": "JWT", "alg": "ES256", "jwk": jwk}),
        &ear_claims(
            &server_runtime_data(CHALLENGE),
            "affirming",
            "default",
            now() + 300,
        ),
    );
    TokenVerifier::new(Trust::Skip, vec!["default".into()])
        .verify(&token, &expected())
        .expect("skip: no x5c needed");
    let err = verifier_for(&chain, &[])
        .verify(&token, &expected())
        .expect_err("anchors configured: x5c required");
    assert_eq!(err, VerifyError::MissingX5c);

    let no_anchors = TokenVerifier::new(
        Trust::Anchors(TrustAnchors::from_certs(Vec::new()).expect("empty")),
        Vec::new(),
    );
    assert_eq!(
        no_anchors
            .verify(&valid_ear(&chain), &expected())
            .expect_err("nothing trusted"),
        VerifyError::NoTrustAnchors
    );
}

#[test]
fn jwk_alg_is_required_and_must_match_the_header() {
    let chain = SignerChain::generate("AS");
    let claims = ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 300,
    );
    let mut jwk = chain.jwk(false);
    jwk.as_object_mut().expect("object").remove("alg");
    let token = chain.sign_with_header(&json!({"alg": "ES256", "jwk": jwk}), &claims);
    assert_eq!(
        verifier_for(&chain, &[])
            .verify(&token, &expected())
            .expect_err("no alg"),
        VerifyError::MissingJwkAlgorithm
    );

    let token = chain.sign_with_header(&json!({"alg": "ES384", "jwk": chain.jwk(false)}), &claims);
    let err = verifier_for(&chain, &[])
        .verify(&token, &expected())
        .expect_err("alg differs");
    assert!(
        matches!(err, VerifyError::AlgorithmMismatch { .. }),
        "{err:?}"
    );

    let token = chain.sign_with_header(&json!({"alg": "ES256"}), &claims);
    assert_eq!(
        verifier_for(&chain, &[])
            .verify(&token, &expected())
            .expect_err("no jwk"),
        VerifyError::MissingJwk
    );
}

#[test]
fn simple_token_route() {
    let chain = SignerChain::generate("AS");
    let token = chain.sign(&simple_claims(
        &server_runtime_data(CHALLENGE),
        &["default", "extra"],
        now() + 300,
    ));
    let verified = verifier_for(&chain, &["extra", "default"])
        .verify(&token, &expected())
        .expect("simple token");
    assert_eq!(verified.profile, TokenProfile::Simple);
    let err = verifier_for(&chain, &["other"])
        .verify(&token, &expected())
        .expect_err("policy missing");
    assert_eq!(err.to_string(), "policy id other missing from the token");
}

#[test]
fn foreign_profile_and_malformed_tokens_fail() {
    let chain = SignerChain::generate("AS");
    let mut claims = ear_claims(
        &server_runtime_data(CHALLENGE),
        "affirming",
        "default",
        now() + 300,
    );
    claims["eat_profile"] = json!("tag:example.com,2020:other");
    let err = verifier_for(&chain, &[])
        .verify(&chain.sign(&claims), &expected())
        .expect_err("profile");
    assert!(matches!(err, VerifyError::UnknownProfile(_)), "{err:?}");

    let verifier = verifier_for(&chain, &[]);
    for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.!!"] {
        assert!(
            matches!(
                verifier.verify(bad, &expected()),
                Err(VerifyError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
}
