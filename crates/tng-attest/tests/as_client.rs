//! The Attestation Service client against a canned in-test HTTP server (spec §A6).

mod common;

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tng_attest::claims::canonical_claims;
use tng_attest::{AsClient, AsError, CocoEvidence, DUMMY_NONCE};

const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.c2ln";
const PROBLEM_JSON: &str = "application/problem+json";

fn headers() -> BTreeMap<String, String> {
    BTreeMap::from([("authorization".to_owned(), "Bearer test".to_owned())])
}

fn evidence(additional: Option<&[u8]>) -> CocoEvidence {
    let claims = as_map(&server_runtime_data("challenge.jwt.x"));
    CocoEvidence::new(
        "sample",
        br#"{"svn":"1","report_data":"AAAA"}"#,
        additional,
        canonical_claims(&claims),
    )
}

fn body_json(seen: &Seen) -> Value {
    serde_json::from_slice(&seen.body).expect("request body is JSON")
}

#[tokio::test]
async fn challenge_reads_extra_params_jwt_in_both_spellings() {
    let server = CannedServer::start(|seen| {
        let key = if seen.headers.contains_key("x-underscore") {
            "extra_params"
        } else {
            "extra-params"
        };
        (
            StatusCode::OK,
            "application/json",
            json!({"nonce": "bm9uY2U=", key: {"jwt": "challenge.jwt.value"}}).to_string(),
        )
    })
    .await;
    let client = AsClient::new(&format!("{}/", server.url()), &headers(), None).expect("client");
    assert_eq!(client.addr(), server.url());
    assert_eq!(
        client.challenge().await.expect("challenge"),
        "challenge.jwt.value"
    );

    let mut underscore = headers();
    underscore.insert("x-underscore".into(), "1".into());
    let client = AsClient::new(&server.url(), &underscore, None).expect("client");
    assert_eq!(
        client.challenge().await.expect("challenge"),
        "challenge.jwt.value"
    );

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, "/challenge");
    assert_eq!(body_json(&seen[0]), json!({}));
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].headers["authorization"], "Bearer test");
}

#[tokio::test]
async fn challenge_falls_back_to_dummy_nonce() {
    let server = CannedServer::start(|_| {
        (
            StatusCode::BAD_REQUEST,
            "text/plain",
            "Failed to get inner tee: missing field `tee`".to_owned(),
        )
    })
    .await;
    let client = AsClient::new(&server.url(), &BTreeMap::new(), None).expect("client");
    assert_eq!(client.challenge().await.expect("fallback"), DUMMY_NONCE);
}

#[tokio::test]
async fn challenge_errors_name_endpoint_status_and_detail() {
    let server = CannedServer::start(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            PROBLEM_JSON,
            json!({"type": "about:blank", "title": "Unavailable", "status": 503,
                   "code": "AS.INTERNAL", "detail": "challenge key missing", "retryable": true})
            .to_string(),
        )
    })
    .await;
    let client = AsClient::new(&server.url(), &BTreeMap::new(), None).expect("client");
    let err = client.challenge().await.expect_err("503");
    assert!(matches!(
        err,
        AsError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "attestation service POST {}/challenge failed with status 503 Service Unavailable: \
             AS.INTERNAL: challenge key missing",
            server.url()
        )
    );

    let ok_without_jwt = CannedServer::start(|_| {
        (
            StatusCode::OK,
            "application/json",
            json!({"nonce": "x"}).to_string(),
        )
    })
    .await;
    let client = AsClient::new(&ok_without_jwt.url(), &BTreeMap::new(), None).expect("client");
    assert!(matches!(
        client.challenge().await,
        Err(AsError::BadResponse { .. })
    ));
}

#[tokio::test]
async fn attestation_sends_the_v1_6_0_body() {
    let server =
        CannedServer::start(|_| (StatusCode::OK, "text/plain", format!("{TOKEN}\n"))).await;
    let client = AsClient::new(&server.url(), &headers(), None).expect("client");
    let evidence = evidence(Some(br#"{"sampledevice":{"svn":"2"}}"#));
    let token = client
        .attestation(&evidence, &["default".to_owned()])
        .await
        .expect("token");
    assert_eq!(token, TOKEN);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.clone(), seen[0].path.as_str()),
        (Method::POST, "/attestation")
    );
    assert_eq!(seen[0].headers["authorization"], "Bearer test");
    let body = body_json(&seen[0]);
    assert_eq!(
        body,
        json!({
            "verification_requests": [
                {
                    "tee": "sample",
                    "evidence": URL_SAFE_NO_PAD.encode(br#"{"svn":"1","report_data":"AAAA"}"#),
                    "runtime_data": {"structured": server_runtime_data("challenge.jwt.x")},
                    "init_data": null,
                    "runtime_data_hash_algorithm": "sha384"
                },
                {
                    "tee": "sampledevice",
                    "evidence": URL_SAFE_NO_PAD.encode(br#"{"svn":"2"}"#),
                    "runtime_data": null,
                    "init_data": null,
                    "runtime_data_hash_algorithm": null
                }
            ],
            "policy_ids": ["default"]
        })
    );
}

#[tokio::test]
async fn attestation_falls_back_to_v1_5_2() {
    let server = CannedServer::start(|seen| {
        let body: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        if body.get("verification_requests").is_some() {
            (
                StatusCode::BAD_REQUEST,
                "text/plain",
                "Failed to deserialize the JSON body into the target type: missing field `tee` at line 1 column 300".to_owned(),
            )
        } else {
            (StatusCode::OK, "text/plain", TOKEN.to_owned())
        }
    })
    .await;
    let client = AsClient::new(&server.url(), &headers(), None).expect("client");
    let token = client
        .attestation(&evidence(Some(br#"{"sampledevice":{"svn":"2"}}"#)), &[])
        .await
        .expect("token after fallback");
    assert_eq!(token, TOKEN);

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["authorization"], "Bearer test");
    assert_eq!(
        body_json(&seen[1]),
        json!({
            "tee": "sample",
            "evidence": URL_SAFE_NO_PAD.encode(br#"{"svn":"1","report_data":"AAAA"}"#),
            "runtime_data": {"structured": server_runtime_data("challenge.jwt.x")},
            "init_data": null,
            "runtime_data_hash_algorithm": "sha384",
            "init_data_hash_algorithm": null,
            "policy_ids": []
        })
    );
}

#[tokio::test]
async fn attestation_rejection_carries_the_problem_detail() {
    let server = CannedServer::start(|_| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            PROBLEM_JSON,
            json!({"type": "about:blank", "title": "Evidence binding mismatch", "status": 422,
                   "code": "AS.EVIDENCE.BINDING_MISMATCH",
                   "detail": "report data does not match the runtime data", "retryable": false})
            .to_string(),
        )
    })
    .await;
    let client = AsClient::new(&server.url(), &BTreeMap::new(), None).expect("client");
    let err = client
        .attestation(&evidence(None), &[])
        .await
        .expect_err("422");
    let text = err.to_string();
    assert!(
        text.contains(&format!("POST {}/attestation", server.url())),
        "{text}"
    );
    assert!(text.contains("422"), "{text}");
    assert!(
        text.ends_with("AS.EVIDENCE.BINDING_MISMATCH: report data does not match the runtime data"),
        "{text}"
    );
    // No fallback without the v1.5.2 marker.
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn certificates_returns_every_pem_certificate() {
    let chain = SignerChain::generate("AS");
    let pem = chain.chain_pem();
    let server = CannedServer::start(move |seen| {
        if seen.path == "/certificate" {
            (StatusCode::OK, "application/x-pem-file", pem.clone())
        } else {
            (
                StatusCode::NOT_FOUND,
                "application/json",
                "{\"error\":\"not found\"}".into(),
            )
        }
    })
    .await;
    let client = AsClient::new(&server.url(), &headers(), None).expect("client");
    let certs = client.certificates().await.expect("certificates");
    assert_eq!(certs, vec![chain.leaf_der.clone(), chain.ca_der.clone()]);
    assert_eq!(server.requests()[0].method, Method::GET);
    assert_eq!(server.requests()[0].headers["authorization"], "Bearer test");

    let no_cert = CannedServer::start(|_| {
        (
            StatusCode::NOT_FOUND,
            "application/json",
            "{\"error\":\"No certificate configured\"}".into(),
        )
    })
    .await;
    let client = AsClient::new(&no_cert.url(), &BTreeMap::new(), None).expect("client");
    let err = client.certificates().await.expect_err("404");
    assert!(
        err.to_string()
            .ends_with("404 Not Found: No certificate configured"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_service_names_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = AsClient::new(&format!("http://{addr}"), &BTreeMap::new(), None).expect("client");
    let err = client.challenge().await.expect_err("nothing listens");
    assert!(matches!(err, AsError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "attestation service unreachable: POST http://{addr}/challenge"
        )),
        "{text}"
    );
}

#[test]
fn invalid_addresses_and_headers_are_refused() {
    for addr in ["", "localhost:8080", "ftp://as", "unix:///as.sock"] {
        assert!(matches!(
            AsClient::new(addr, &BTreeMap::new(), None),
            Err(AsError::InvalidAddress(_))
        ));
    }
    let bad = BTreeMap::from([("bad header".to_owned(), "x".to_owned())]);
    assert!(matches!(
        AsClient::new("http://as", &bad, None),
        Err(AsError::InvalidHeader(_))
    ));
}

/// The gateway marks its AS sockets (`so_mark`) so capture never catches them. Setting a mark
/// needs CAP_NET_ADMIN (CI runs as root); without it the error names the cause.
#[tokio::test]
async fn marked_sockets_reach_the_service() {
    let server = CannedServer::start(|_| {
        (
            StatusCode::OK,
            "application/json",
            json!({"extra-params": {"jwt": "marked.jwt.x"}}).to_string(),
        )
    })
    .await;
    let client = AsClient::new(&server.url(), &BTreeMap::new(), Some(565)).expect("client");
    match client.challenge().await {
        Ok(jwt) => assert_eq!(jwt, "marked.jwt.x"),
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains("setting SO_MARK 565 failed"), "{text}");
            eprintln!("skipped: no CAP_NET_ADMIN here ({text})");
        }
    }
}
