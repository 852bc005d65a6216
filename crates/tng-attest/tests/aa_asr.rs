//! The `coco_asr` evidence source against a canned ASR (§A5).

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use http::StatusCode;
use tng_attest::claims::{canonical_claims, runtime_data_digest};
use tng_attest::{AaError, AaProvider, Attester, Model};

fn config(asr_addr: &str) -> tng_config::Attest {
    tng_config::Attest {
        model: Model::BackgroundCheck,
        aa_provider: AaProvider::CocoAsr,
        aa_addr: String::new(),
        asr_addr: Some(asr_addr.to_owned()),
        refresh_interval: Duration::from_secs(0),
        as_addr: None,
        policy_ids: Vec::new(),
        as_headers: Default::default(),
    }
}

#[tokio::test]
async fn asr_evidence_info_once_and_query_encoding() {
    let asr = CannedServer::start(|seen| {
        let path = seen.path.split('?').next().unwrap_or_default();
        match path {
            "/info" => (
                StatusCode::OK,
                "application/json",
                r#"{"tee":"sample"}"#.into(),
            ),
            "/aa/evidence" => (
                StatusCode::OK,
                "application/octet-stream",
                r#"{"svn":"1"}"#.into(),
            ),
            "/aa/additional-evidence" => (StatusCode::NOT_FOUND, "text/plain", "none".into()),
            _ => (StatusCode::NOT_FOUND, "text/plain", String::new()),
        }
    })
    .await;
    let attester = Attester::new(&config(&asr.url()), None).expect("attester");
    let claims = as_map(&server_runtime_data("c.h.t"));
    for _ in 0..2 {
        let evidence = attester.evidence(&claims).await.expect("evidence");
        assert_eq!(evidence.aa_tee_type, "sample");
        assert_eq!(evidence.evidence_bytes().expect("b64"), br#"{"svn":"1"}"#);
        assert_eq!(evidence.aa_additional_evidence, None);
    }
    let digest = runtime_data_digest(&canonical_claims(&claims));
    let query = format!(
        "runtime_data={}&encoding=base64",
        URL_SAFE_NO_PAD.encode(digest)
    );
    let paths: Vec<String> = asr.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/info".to_owned(),
            format!("/aa/evidence?{query}"),
            format!("/aa/additional-evidence?{query}"),
            format!("/aa/evidence?{query}"),
            format!("/aa/additional-evidence?{query}"),
        ]
    );
}

#[tokio::test]
async fn asr_errors() {
    let asr = CannedServer::start(|seen| {
        if seen.path == "/info" {
            (
                StatusCode::OK,
                "application/json",
                r#"{"tee":"sample"}"#.into(),
            )
        } else {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "attester failed".into(),
            )
        }
    })
    .await;
    let attester = Attester::new(&config(&asr.url()), None).expect("attester");
    let err = attester
        .evidence(&Default::default())
        .await
        .expect_err("500");
    assert!(
        matches!(err, tng_attest::Error::Aa(AaError::GetEvidence(_))),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("GetEvidenceFromAAFailed: "), "{text}");
    assert!(text.contains("attester failed"), "{text}");

    let no_info =
        CannedServer::start(|_| (StatusCode::NOT_FOUND, "text/plain", String::new())).await;
    let attester = Attester::new(&config(&no_info.url()), None).expect("attester");
    let err = attester
        .evidence(&Default::default())
        .await
        .expect_err("no /info");
    assert!(
        err.to_string().starts_with("GetTeeTypeFromAAFailed: "),
        "{err}"
    );
}
