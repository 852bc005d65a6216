use serde_json::json;

use super::*;
use crate::keys::Aead;

#[test]
fn api_header_values() {
    for api in OhttpApi::ALL {
        assert_eq!(OhttpApi::parse(api.as_str().as_bytes()), Some(api));
    }
    assert_eq!(
        OhttpApi::parse(b"/tng/key-config"),
        Some(OhttpApi::KeyConfig)
    );
    assert_eq!(OhttpApi::parse(b"/tng/tunnel"), Some(OhttpApi::Tunnel));
    assert_eq!(OhttpApi::parse(b"/TNG/tunnel"), None, "case-sensitive");
    assert_eq!(OhttpApi::parse(b"/tng/tunnel "), None);
    assert_eq!(OhttpApi::parse(b""), None);
    assert_eq!(API_HEADER, "x-tng-ohttp-api");
}

#[test]
fn key_config_request_forms() {
    let none = KeyConfigRequest::default();
    assert_eq!(
        serde_json::to_string(&none).unwrap(),
        r#"{"attestation_request":null}"#
    );
    let parse = |s: &str| serde_json::from_str::<KeyConfigRequest>(s).unwrap();
    assert_eq!(parse("{}"), none);
    assert_eq!(parse(r#"{"attestation_request":null}"#), none);
    assert_eq!(
        parse(r#"{"attestation_request":{"model":"passport"}}"#).attestation_request,
        Some(AttestationRequest::Passport)
    );
    let bg = parse(r#"{"attestation_request":{"model":"background_check","challenge_token":"t"}}"#);
    assert_eq!(
        bg.attestation_request,
        Some(AttestationRequest::BackgroundCheck {
            challenge_token: "t".into()
        })
    );
    assert_eq!(
        serde_json::to_value(&bg).unwrap(),
        json!({"attestation_request": {"model": "background_check", "challenge_token": "t"}})
    );
    assert!(
        serde_json::from_str::<KeyConfigRequest>(r#"{"attestation_request":{"model":"x"}}"#)
            .is_err()
    );
}

#[test]
fn observed_key_config_response() {
    let body = r#"{
      "hpke_key_config": {
        "expire_timestamp": 3688063588,
        "encoded_key_config_list": "AC0AACCfX/KrJJGR5JZK02t8Hy+dagimzJFRxh85w8dEAND+dwAIAAEAAwABAAE="
      },
      "attestation_info": null
    }"#;
    let response: KeyConfigResponse = serde_json::from_str(body).unwrap();
    assert_eq!(response.attestation_info, None);
    assert_eq!(response.hpke_key_config.expire_timestamp, 3_688_063_588);
    let configs = response.hpke_key_config.decode().unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(
        configs[0].aeads,
        vec![Aead::ChaCha20Poly1305, Aead::Aes128Gcm]
    );
    // Re-encoding reproduces the exact string, and attestation_info is always present.
    let again = HpkeKeyConfig::new(&configs, 3_688_063_588);
    assert_eq!(again, response.hpke_key_config);
    let json = serde_json::to_string(&KeyConfigResponse {
        hpke_key_config: again,
        attestation_info: None,
    })
    .unwrap();
    assert_eq!(
        json,
        r#"{"hpke_key_config":{"expire_timestamp":3688063588,"encoded_key_config_list":"AC0AACCfX/KrJJGR5JZK02t8Hy+dagimzJFRxh85w8dEAND+dwAIAAEAAwABAAE="},"attestation_info":null}"#
    );
    let bad = HpkeKeyConfig {
        expire_timestamp: 0,
        encoded_key_config_list: "not base64!".into(),
    };
    assert!(matches!(bad.decode(), Err(KeyConfigError::Base64(_))));
}

#[test]
fn attestation_info_variants() {
    let passport = AttestationInfo::Passport {
        attestation_result: "jwt".into(),
        as_provider: Some("coco".into()),
    };
    assert_eq!(
        serde_json::to_value(&passport).unwrap(),
        json!({"model": "passport", "attestation_result": "jwt", "as_provider": "coco"})
    );
    let legacy: AttestationInfo =
        serde_json::from_value(json!({"model": "passport", "attestation_result": "jwt"})).unwrap();
    assert_eq!(
        legacy,
        AttestationInfo::Passport {
            attestation_result: "jwt".into(),
            as_provider: None
        }
    );
    let bg = json!({"model": "background_check", "evidence": {"aa_tee_type": "sample"}, "aa_provider": "coco"});
    let parsed: AttestationInfo = serde_json::from_value(bg.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), bg);
}

#[test]
fn relay_bodies() {
    let c: ChallengeResponse = serde_json::from_str(r#"{"challenge_token":"abc"}"#).unwrap();
    assert_eq!(c.challenge_token, "abc");
    let v: VerifyRequest = serde_json::from_value(json!({"evidence": {"x": 1}})).unwrap();
    assert_eq!(v.aa_provider, None);
    assert_eq!(
        serde_json::to_value(&VerifyResponse {
            attestation_result: "t".into(),
            as_provider: Some("coco".into())
        })
        .unwrap(),
        json!({"attestation_result": "t", "as_provider": "coco"})
    );
}

#[test]
fn error_body_json() {
    let body = ErrorBody::new("RejectNonTngRequest", "say \"hi\"");
    assert_eq!(
        body.to_json(),
        r#"{"code":"RejectNonTngRequest","message":"say \"hi\""}"#
    );
}
