//! The Attestation Agent client against a real ttrpc server on a temporary unix socket (§A3).

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use serde_json::Value;
use tng_attest::claims::{canonical_claims, runtime_data_digest};
use tng_attest::{AaClient, AaError, AaProvider, Attester, EvidenceSource, Model};

fn attest_config(aa_addr: &str) -> tng_config::Attest {
    tng_config::Attest {
        model: Model::BackgroundCheck,
        aa_provider: AaProvider::Coco,
        aa_addr: aa_addr.to_owned(),
        asr_addr: None,
        refresh_interval: Duration::from_secs(600),
        as_addr: None,
        policy_ids: Vec::new(),
        as_headers: Default::default(),
    }
}

#[tokio::test]
async fn evidence_binds_the_claims_and_follows_the_call_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aa = FakeAaServer::start(&dir.path().join("aa.sock"), FakeAaBehaviour::default()).await;
    let attester = Attester::new(&attest_config(&aa.addr), None).expect("attester");
    assert_eq!(attester.model(), Model::BackgroundCheck);
    assert_eq!(attester.refresh_interval(), Duration::from_secs(600));

    let claims = as_map(&server_runtime_data("challenge.jwt.x"));
    let evidence = attester.evidence(&claims).await.expect("evidence");

    let canonical = canonical_claims(&claims);
    let digest = runtime_data_digest(&canonical);
    assert_eq!(evidence.aa_tee_type, "sample");
    assert_eq!(evidence.aa_runtime_data, canonical);
    assert_eq!(evidence.aa_runtime_data_hash_algo, "sha384");
    assert_eq!(evidence.aa_additional_evidence, None);
    let aa_json: Value =
        serde_json::from_slice(&evidence.evidence_bytes().expect("b64")).expect("AA JSON");
    assert_eq!(aa_json["report_data"], STANDARD.encode(digest));
    assert_eq!(aa_json["svn"], "1");

    let calls = aa.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        ["GetEvidence", "GetTeeType", "GetAdditionalEvidence"]
    );
    assert_eq!(calls[0].runtime_data, digest.to_vec());
    assert_eq!(calls[0].runtime_data.len(), 48);
    assert!(calls[2].runtime_data.is_empty());
    for call in &calls {
        assert_eq!(call.timeout_nano, 50_000_000_000, "{call:?}");
    }

    // Wire shape of the wrapper.
    let json = serde_json::to_value(&evidence).expect("json");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "aa_evidence",
            "aa_runtime_data",
            "aa_runtime_data_hash_algo",
            "aa_tee_type"
        ]
    );
    aa.stop().await;
}

#[tokio::test]
async fn additional_evidence_is_wrapped_and_its_failure_is_tolerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = br#"{"sampledevice":{"svn":"2","report_data":""}}"#.to_vec();
    let aa = FakeAaServer::start(
        &dir.path().join("aa.sock"),
        FakeAaBehaviour {
            additional: Some(device.clone()),
            ..Default::default()
        },
    )
    .await;
    let client = AaClient::new(&aa.addr).expect("client");
    let source = EvidenceSource::Ttrpc(client);
    let evidence = source
        .evidence(&Default::default())
        .await
        .expect("evidence");
    assert_eq!(
        evidence.aa_additional_evidence,
        Some(STANDARD.encode(&device))
    );
    assert_eq!(evidence.aa_runtime_data, "{}");
    aa.stop().await;

    let failing = FakeAaServer::start(
        &dir.path().join("aa2.sock"),
        FakeAaBehaviour {
            fail_additional: true,
            ..Default::default()
        },
    )
    .await;
    let source = EvidenceSource::Ttrpc(AaClient::new(&failing.addr).expect("client"));
    let evidence = source
        .evidence(&Default::default())
        .await
        .expect("still evidence");
    assert_eq!(evidence.aa_additional_evidence, None);
    failing.stop().await;
}

#[tokio::test]
async fn aa_failures_have_upstream_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = FakeAaServer::start(
        &dir.path().join("broken.sock"),
        FakeAaBehaviour {
            fail_evidence: true,
            ..Default::default()
        },
    )
    .await;
    let client = AaClient::new(&broken.addr).expect("client");
    let err = client.get_evidence(&[0; 48]).await.expect_err("INTERNAL");
    assert!(matches!(err, AaError::GetEvidence(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("GetEvidenceFromAAFailed: "), "{text}");
    assert!(text.contains("sample attester broke"), "{text}");
    broken.stop().await;

    let odd = FakeAaServer::start(
        &dir.path().join("odd.sock"),
        FakeAaBehaviour {
            tee: Some("quantum".into()),
            ..Default::default()
        },
    )
    .await;
    let source = EvidenceSource::Ttrpc(AaClient::new(&odd.addr).expect("client"));
    let err = source
        .evidence(&Default::default())
        .await
        .expect_err("unknown tee");
    assert!(
        matches!(err, AaError::UnknownTee(ref t) if t == "quantum"),
        "{err:?}"
    );
    odd.stop().await;

    assert!(matches!(
        AaClient::new("/run/aa.sock"),
        Err(AaError::InvalidAddress(_))
    ));
}

#[tokio::test]
async fn connects_lazily_and_reconnects_after_an_aa_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aa.sock");
    let client = AaClient::new(&format!("unix://{}", path.display())).expect("client");
    assert_eq!(client.socket_path(), path.to_str().expect("utf-8"));

    // No AA yet: a clear connect error, no panic, no wedge.
    let err = client.get_tee_type().await.expect_err("no socket");
    assert!(matches!(err, AaError::Connect { .. }), "{err:?}");

    let aa = FakeAaServer::start(&path, FakeAaBehaviour::default()).await;
    assert_eq!(client.get_tee_type().await.expect("now up"), "sample");
    aa.stop().await;

    let aa = FakeAaServer::start(&path, FakeAaBehaviour::default()).await;
    let mut ok = false;
    for _ in 0..3 {
        if client.get_tee_type().await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the client recovers after the AA restarted");
    aa.stop().await;
}
