//! The façade end to end: Attester (ttrpc AA) → Verifier (RESTful AS that appraises the
//! evidence and issues EAR tokens signed by a generated chain) in both models.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use http::StatusCode;
use serde_json::{json, Value};
use tng_attest::claims::{canonical_claims, runtime_data_digest};
use tng_attest::{AaProvider, Attester, Error, Model, Verifier, VerifyError};

/// A minimal Attestation Service: `/challenge`, `/certificate`, and `/attestation` that checks
/// the report-data binding (like the sample verifier) and issues an EAR token whose status is
/// `status` for policy `default`.
async fn fake_as(chain: Arc<SignerChain>, status: &'static str) -> CannedServer {
    CannedServer::start(move |seen| match seen.path.as_str() {
        "/challenge" => (
            StatusCode::OK,
            "application/json",
            json!({"nonce": "bg==", "extra-params": {"jwt": format!("challenge.{}.sig", now())}})
                .to_string(),
        ),
        "/certificate" => (StatusCode::OK, "application/x-pem-file", chain.chain_pem()),
        "/attestation" => {
            let body: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
            let request = &body["verification_requests"][0];
            let structured = request["runtime_data"]["structured"].clone();
            let evidence = URL_SAFE_NO_PAD
                .decode(request["evidence"].as_str().unwrap_or_default())
                .unwrap_or_default();
            let evidence: Value = serde_json::from_slice(&evidence).unwrap_or_default();
            let expected = runtime_data_digest(&canonical_claims(
                &structured.as_object().cloned().unwrap_or_default(),
            ));
            if evidence["report_data"] != STANDARD.encode(expected) {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "application/problem+json",
                    json!({"code": "AS.EVIDENCE.BINDING_MISMATCH", "detail": "report data mismatch"})
                        .to_string(),
                );
            }
            let token = chain.sign(&ear_claims(&structured, status, "default", now() + 300));
            (StatusCode::OK, "text/plain", token)
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", String::new()),
    })
    .await
}

fn verify_config(as_addr: &str, model: Model) -> tng_config::Verify {
    tng_config::Verify {
        model,
        as_addr: Some(as_addr.to_owned()),
        policy_ids: vec!["default".into()],
        as_headers: BTreeMap::new(),
        trusted_certs_paths: None,
        verify_signer_transparency: false,
        skip_as_token_cert_verify: false,
    }
}

fn attest_config(aa_addr: &str, model: Model, as_addr: Option<&str>) -> tng_config::Attest {
    tng_config::Attest {
        model,
        aa_provider: AaProvider::Coco,
        aa_addr: aa_addr.to_owned(),
        asr_addr: None,
        refresh_interval: Duration::from_secs(600),
        as_addr: as_addr.map(str::to_owned),
        policy_ids: vec!["default".into()],
        as_headers: BTreeMap::new(),
    }
}

fn hpke_key_config() -> Value {
    json!({"expire_timestamp": now() + 300, "encoded_key_config_list": "AC0AACCf+/8="})
}

#[tokio::test]
async fn background_check_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aa = FakeAaServer::start(&dir.path().join("aa.sock"), FakeAaBehaviour::default()).await;
    let chain = Arc::new(SignerChain::generate("AS"));
    let service = fake_as(chain.clone(), "affirming").await;

    let verifier = Verifier::new(&verify_config(&service.url(), Model::BackgroundCheck), None)
        .await
        .expect("verifier fetches /certificate");
    let attester = Attester::new(&attest_config(&aa.addr, Model::BackgroundCheck, None), None)
        .expect("attester");

    // Client: challenge; server: evidence bound to {challenge, key}; client: convert + verify.
    let challenge = verifier.challenge().await.expect("challenge");
    let key = hpke_key_config();
    let claims = tng_attest::claims::server_claims(Some(&challenge), key.clone());
    let evidence = attester.evidence(&claims).await.expect("evidence");
    let wire = serde_json::to_string(&evidence).expect("json");
    let received: tng_attest::CocoEvidence = serde_json::from_str(&wire).expect("parse");

    let expected = tng_attest::claims::server_claims(Some(&challenge), key.clone());
    let verified = verifier
        .appraise(&received, &expected)
        .await
        .expect("accepted");
    assert_eq!(verified.runtime_data, expected);
    assert!(verified.exp > now());

    // A different key than the evidence was bound to is refused by the binding check.
    let other = tng_attest::claims::server_claims(
        Some(&challenge),
        json!({"expire_timestamp": 1, "encoded_key_config_list": "AAAA"}),
    );
    let err = verifier
        .appraise(&received, &other)
        .await
        .expect_err("mismatch");
    assert_eq!(
        err.to_string(),
        "runtime data mismatch: hpke_key_config differs"
    );

    // Tampered evidence: the AS refuses it, the error says so.
    let mut tampered = received.clone();
    tampered.aa_runtime_data = canonical_claims(&other);
    let err = verifier
        .appraise(&tampered, &other)
        .await
        .expect_err("binding");
    assert!(matches!(err, Error::As(_)), "{err:?}");
    assert!(
        err.to_string().contains("AS.EVIDENCE.BINDING_MISMATCH"),
        "{err}"
    );
    aa.stop().await;
}

#[tokio::test]
async fn passport_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aa = FakeAaServer::start(&dir.path().join("aa.sock"), FakeAaBehaviour::default()).await;
    let chain = Arc::new(SignerChain::generate("AS"));
    let service = fake_as(chain.clone(), "affirming").await;

    let attester = Attester::new(
        &attest_config(&aa.addr, Model::Passport, Some(&service.url())),
        None,
    )
    .expect("attester");
    let key = hpke_key_config();
    let token = attester
        .passport_token(&tng_attest::claims::server_claims(None, key.clone()))
        .await
        .expect("passport token");

    // The verifier trusts the CA from a file instead of /certificate.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, format!("{}{}", chain.ca_pem, chain.leaf_pem)).expect("write");
    let mut config = verify_config(&service.url(), Model::Passport);
    config.as_addr = None;
    config.trusted_certs_paths = Some(vec![ca_file]);
    let verifier = Verifier::new(&config, None).await.expect("verifier");
    let verified = verifier
        .verify(&token, &tng_attest::claims::server_claims(None, key))
        .expect("passport token verifies");
    assert!(verified.runtime_data["challenge_token"]
        .as_str()
        .is_some_and(|c| c.starts_with("challenge.")));
    aa.stop().await;
}

#[tokio::test]
async fn contraindicated_evidence_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aa = FakeAaServer::start(&dir.path().join("aa.sock"), FakeAaBehaviour::default()).await;
    let chain = Arc::new(SignerChain::generate("AS"));
    let service = fake_as(chain, "contraindicated").await;
    let verifier = Verifier::new(&verify_config(&service.url(), Model::BackgroundCheck), None)
        .await
        .expect("verifier");
    let attester = Attester::new(&attest_config(&aa.addr, Model::BackgroundCheck, None), None)
        .expect("attester");
    let challenge = verifier.challenge().await.expect("challenge");
    let claims = tng_attest::claims::server_claims(Some(&challenge), hpke_key_config());
    let evidence = attester.evidence(&claims).await.expect("evidence");
    let err = verifier
        .appraise(&evidence, &claims)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, Error::Verify(VerifyError::StatusNotAffirming { .. })),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "submodule cpu0 status is contraindicated");
    aa.stop().await;
}

#[tokio::test]
async fn verifier_startup_needs_a_trust_source() {
    // /certificate failing aborts construction, naming the endpoint.
    let broken = CannedServer::start(|_| {
        (
            StatusCode::NOT_FOUND,
            "application/json",
            "{\"error\":\"No certificate configured\"}".into(),
        )
    })
    .await;
    let err = Verifier::new(&verify_config(&broken.url(), Model::BackgroundCheck), None)
        .await
        .expect_err("no certificate");
    assert!(err.to_string().contains("/certificate"), "{err}");

    // Skipping needs nothing; a token signed by anyone with an embedded JWK passes.
    let mut config = verify_config(&broken.url(), Model::Passport);
    config.as_addr = None;
    config.skip_as_token_cert_verify = true;
    let verifier = Verifier::new(&config, None).await.expect("skip");
    let chain = SignerChain::generate("anyone");
    let token = chain.sign(&ear_claims(
        &json!({"k": 1}),
        "affirming",
        "default",
        now() + 60,
    ));
    let mut expected = serde_json::Map::new();
    expected.insert("k".into(), json!(1));
    verifier.verify(&token, &expected).expect("skip mode");
    assert!(matches!(verifier.challenge().await, Err(Error::Config(_))));

    // A check we do not implement is refused, not skipped.
    let mut transparency = config.clone();
    transparency.verify_signer_transparency = true;
    let err = Verifier::new(&transparency, None)
        .await
        .expect_err("unsupported");
    assert!(
        err.to_string().contains("verify_signer_transparency"),
        "{err}"
    );

    // Neither as_addr nor files, not skipping.
    config.skip_as_token_cert_verify = false;
    let err = Verifier::new(&config, None).await.expect_err("no source");
    assert!(matches!(err, Error::NoTrustSource), "{err:?}");
}

#[tokio::test]
async fn trust_anchors_can_be_refreshed_after_a_signer_rotation() {
    let first = Arc::new(SignerChain::generate("first"));
    let second = Arc::new(SignerChain::generate("second"));
    let current = Arc::new(std::sync::Mutex::new(first.clone()));
    let serving = current.clone();
    let service = CannedServer::start(move |_| {
        let chain = serving.lock().expect("lock").clone();
        (StatusCode::OK, "application/x-pem-file", chain.chain_pem())
    })
    .await;
    let verifier = Verifier::new(&verify_config(&service.url(), Model::BackgroundCheck), None)
        .await
        .expect("verifier");
    let rd = json!({"k": 1});
    let expected = rd.as_object().cloned().expect("object");
    let token = second.sign(&ear_claims(&rd, "affirming", "default", now() + 60));
    assert!(matches!(
        verifier.verify(&token, &expected),
        Err(Error::Verify(VerifyError::SignerNotTrusted(_)))
    ));
    *current.lock().expect("lock") = second.clone();
    verifier.refresh_trust_anchors().await.expect("refresh");
    verifier
        .verify(&token, &expected)
        .expect("trusted after refresh");
}
