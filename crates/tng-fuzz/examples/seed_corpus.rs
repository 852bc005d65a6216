//! Writes the seed corpus of every fuzz target from our own encoders and the fixture keys:
//!
//! ```text
//! cargo run -p tng-fuzz --example seed_corpus -- fuzz/corpus [founding-scenario.txt]
//! ```
//!
//! Files are named `seed-<what>` so a seed can be told apart from what `cargo fuzz cmin` keeps
//! later. Configurations come from the tng-config tests (every raw string literal) and, when
//! given, the JSON blocks of the founding scenario text.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use protobuf::Message as _;
use serde_json::{json, Value};
use tng_attest::aa::proto::{GetEvidenceResponse, GetTeeTypeResponse};
use tng_attest::claims::{canonical_claims, client_claims, CocoEvidence};
use tng_attest::verify::anchors::pem_certificates;
use tng_fuzz::fixtures;
use tng_fuzz::split::Control;
use tng_ohttp::api::{
    AttestationInfo, AttestationRequest, ChallengeResponse, ErrorBody, KeyConfigRequest,
    KeyConfigResponse, VerifyRequest, VerifyResponse,
};
use tng_ohttp::bhttp::{self, RequestHead};
use tng_ohttp::chunked::{ClientRequest, RequestHeader, ServerRequest};
use tng_ohttp::keys::{encode_key_config_list, Aead, KeyConfig};
use tng_ohttp::metadata::{
    encode_frame, AttestedPublicKey, ClientAuth, Metadata, NoAuth, ServerKeyConfigHint,
};
use ttrpc::proto::{GenMessage, MessageHeader};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        self.count += 1;
        Ok(())
    }
}

fn main() -> Result {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .ok_or("usage: seed_corpus OUT_DIR [SCENARIO_TEXT]")?;
    let scenario = args.next();
    let mut out = Out {
        root: PathBuf::from(root),
        count: 0,
    };
    let token = ear_token(
        fixtures::expected_claims(),
        "affirming",
        fixtures::POLICY_ID,
    )?;
    bhttp_seeds(&mut out)?;
    metadata_seeds(&mut out, &token)?;
    chunked_request_seeds(&mut out)?;
    chunked_response_seeds(&mut out)?;
    key_config_seeds(&mut out, &token)?;
    as_token_seeds(&mut out)?;
    aa_response_seeds(&mut out)?;
    config_seeds(&mut out, scenario.as_deref())?;
    ratstls_cert_seeds(&mut out, &token)?;
    connect_stream_seeds(&mut out)?;
    println!(
        "wrote {} seed files under {}",
        out.count,
        out.root.display()
    );
    Ok(())
}

fn with_control(mode: u8, seed: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Control::encode(mode, seed, flags).to_vec();
    out.extend_from_slice(body);
    out
}

fn headers(pairs: &[(&'static str, &str)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value)?);
    }
    Ok(map)
}

/// Inner requests and responses as our ingress and egress encode them (indeterminate length).
fn inner_messages() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut messages = Vec::new();
    let request =
        |method: Method, path: &str, fields: HeaderMap, body: &[u8], trailers: HeaderMap| {
            let mut out = BytesMut::new();
            bhttp::encode_request_head(
                &RequestHead {
                    method,
                    scheme: String::new(),
                    authority: "gw.example:8080".into(),
                    path: path.into(),
                    headers: fields,
                },
                &mut out,
            );
            for piece in body.chunks(7) {
                bhttp::encode_data(piece, &mut out);
            }
            bhttp::encode_end_of_content(&mut out);
            bhttp::encode_trailers(&trailers, &mut out);
            out.to_vec()
        };
    messages.push((
        "get",
        request(
            Method::GET,
            "/api/v1/items?x=1",
            headers(&[("host", "gw.example:8080"), ("accept", "*/*")])?,
            b"",
            HeaderMap::new(),
        ),
    ));
    messages.push((
        "post",
        request(
            Method::POST,
            "/upload",
            headers(&[
                ("content-type", "application/json"),
                ("content-length", "27"),
            ])?,
            br#"{"model":"m","stream":true}"#,
            headers(&[("x-checksum", "abc")])?,
        ),
    ));
    let mut response = BytesMut::new();
    bhttp::encode_response_head(
        StatusCode::OK,
        &headers(&[
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ])?,
        &mut response,
    )?;
    for token in ["data: hel", "lo\n\n", "data: [DONE]\n\n"] {
        bhttp::encode_data(token.as_bytes(), &mut response);
    }
    bhttp::encode_end_of_content(&mut response);
    bhttp::encode_trailers(&HeaderMap::new(), &mut response);
    messages.push(("sse-response", response.to_vec()));
    let mut not_found = BytesMut::new();
    bhttp::encode_response_head(StatusCode::NOT_FOUND, &HeaderMap::new(), &mut not_found)?;
    bhttp::encode_end_of_content(&mut not_found);
    bhttp::encode_trailers(&HeaderMap::new(), &mut not_found);
    messages.push(("404-response", not_found.to_vec()));
    Ok(messages)
}

fn bhttp_seeds(out: &mut Out) -> Result {
    for (name, message) in inner_messages()? {
        out.put("bhttp", name, &with_control(0, 0, 0, &message))?;
        out.put(
            "bhttp",
            &format!("{name}-1byte"),
            &with_control(1, 0, 0, &message),
        )?;
        out.put(
            "bhttp",
            &format!("{name}-random"),
            &with_control(200, 7, 0, &message),
        )?;
    }
    // Known-length forms (RFC 9292 §3), which only a foreign peer would send: request with
    // content, and a response after an interim 103, with trailers and zero padding.
    let known_request = [
        &[0u8, 3][..],
        b"PUT",
        &[5],
        b"https",
        &[11],
        b"example.com",
        &[2],
        b"/x",
        &[8, 2],
        b"te",
        &[4],
        b"gzip",
        &[5],
        b"hello",
        &[0],
    ]
    .concat();
    out.put(
        "bhttp",
        "known-request",
        &with_control(3, 0, 0, &known_request),
    )?;
    let known_response = [
        &[1u8, 0x40, 103, 8, 4][..],
        b"link",
        &[2],
        b"<>",
        &[0x40, 200, 0, 2],
        b"ok",
        &[6, 1],
        b"t",
        &[3],
        b"v=1",
        &[0, 0, 0],
    ]
    .concat();
    out.put(
        "bhttp",
        "known-response",
        &with_control(2, 0, 0, &known_response),
    )?;
    out.put(
        "bhttp",
        "known-response-small-limit",
        &with_control(0, 1, 1, &known_response),
    )?;
    // Malformed: an unknown framing, bad padding, an uppercase header name, a truncation.
    out.put("bhttp", "bad-framing", &with_control(0, 0, 0, &[4, 0, 0]))?;
    out.put(
        "bhttp",
        "bad-padding",
        &with_control(0, 0, 0, &[&known_response[..], &[1]].concat()),
    )?;
    out.put(
        "bhttp",
        "bad-header-name",
        &with_control(0, 0, 0, &[3, 0x40, 200, 1, b'A', 1, b'b', 0, 0, 0]),
    )?;
    out.put(
        "bhttp",
        "truncated",
        &with_control(1, 0, 0, &known_request[..known_request.len() - 9]),
    )?;
    Ok(())
}

fn metadata_seeds(out: &mut Out, token: &str) -> Result {
    let hint = Some(ServerKeyConfigHint {
        public_key: fixtures::server_key().public_key().to_vec(),
    });
    let no_auth = encode_frame(&Metadata {
        client_auth: Some(ClientAuth::NoAuth(NoAuth {})),
        key_config_hint: hint.clone(),
    });
    let attested = encode_frame(&Metadata {
        client_auth: Some(ClientAuth::AttestedPublicKey(AttestedPublicKey {
            attestation_result: token.to_owned(),
            pk_s: fixtures::sender_public().to_vec(),
            as_provider: "coco".into(),
        })),
        key_config_hint: hint,
    });
    // What follows the frame on the wire: the OHTTP header.
    let tail = RequestHeader::parse(&fixtures::response_client().header())?.encode();
    let body = [&no_auth[..], &tail].concat();
    out.put("metadata", "no-auth", &with_control(0, 0, 0, &body))?;
    out.put("metadata", "no-auth-1byte", &with_control(1, 0, 2, &body))?;
    out.put("metadata", "no-auth-random", &with_control(90, 3, 0, &body))?;
    out.put("metadata", "attested", &with_control(40, 9, 0, &attested))?;
    out.put(
        "metadata",
        "empty-frame",
        &with_control(0, 0, 0, &[0, 0, 0, 0]),
    )?;
    // Declares more bytes than are sent (the upstream hang), and more than the limit.
    out.put(
        "metadata",
        "short-body",
        &with_control(2, 0, 0, &[0, 0, 1, 0, 0x0a, 0x00]),
    )?;
    out.put(
        "metadata",
        "too-long",
        &with_control(0, 0, 1, &[0xff, 0xff, 0xff, 0xff]),
    )?;
    out.put(
        "metadata",
        "bad-protobuf",
        &with_control(0, 0, 0, &[0, 0, 0, 3, 0x0a, 0x05, 0x01]),
    )?;
    Ok(())
}

/// `header ‖ chunks` of a request sealed to the fixture key.
fn sealed_request(client: &mut ClientRequest, message: &[u8], pieces: usize) -> Result<Vec<u8>> {
    let mut body = client.header().to_vec();
    let step = message.len().div_ceil(pieces.max(1)).max(1);
    let mut chunks = message.chunks(step).peekable();
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_some() {
            body.extend_from_slice(&client.seal_chunk(chunk)?);
        } else {
            body.extend_from_slice(&client.seal_final(chunk)?);
        }
    }
    if message.is_empty() {
        body.extend_from_slice(&client.seal_final(b"")?);
    }
    Ok(body)
}

fn chunked_request_seeds(out: &mut Out) -> Result {
    let config = fixtures::server_key().config().clone();
    let aes_only = KeyConfig {
        aeads: vec![Aead::Aes128Gcm],
        ..config.clone()
    };
    for (name, message) in inner_messages()?.into_iter().take(2) {
        let mut client = ClientRequest::new(&config)?;
        let body = sealed_request(&mut client, &message, 3)?;
        out.put("chunked_request", name, &with_control(0, 0, 2, &body))?;
        out.put(
            "chunked_request",
            &format!("{name}-random"),
            &with_control(250, 1, 0, &body),
        )?;
        let mut auth = ClientRequest::new_auth(&config, &fixtures::SENDER_SECRET)?;
        let body = sealed_request(&mut auth, &message, 1)?;
        out.put(
            "chunked_request",
            &format!("{name}-auth"),
            &with_control(5, 0, 1, &body),
        )?;
        let mut aes = ClientRequest::new(&aes_only)?;
        let body = sealed_request(&mut aes, &message, 2)?;
        out.put(
            "chunked_request",
            &format!("{name}-aes"),
            &with_control(33, 4, 2, &body),
        )?;
    }
    // A body larger than one chunk (split by the sealer), and the malformed cases.
    let mut client = ClientRequest::new(&config)?;
    let big = sealed_request(&mut client, &[b'z'; 17000], 1)?;
    out.put(
        "chunked_request",
        "two-chunks",
        &with_control(255, 2, 0, &big),
    )?;
    let mut client = ClientRequest::new(&config)?;
    let body = sealed_request(&mut client, b"\x02\x03GET\x00\x00\x01/\x00\x00\x00", 2)?;
    out.put(
        "chunked_request",
        "truncated-final",
        &with_control(0, 0, 2, &body[..body.len() - 3]),
    )?;
    out.put(
        "chunked_request",
        "no-final",
        &with_control(0, 0, 2, &client.header()),
    )?;
    let mut wrong_id = body.clone();
    wrong_id[0] ^= 1;
    out.put(
        "chunked_request",
        "wrong-key-id",
        &with_control(0, 0, 0, &wrong_id),
    )?;
    let mut flipped = body.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 0x80;
    }
    out.put(
        "chunked_request",
        "bad-tag",
        &with_control(0, 0, 2, &flipped),
    )?;
    let mut oversized = client.header().to_vec();
    oversized.extend_from_slice(&[0x80, 0x00, 0x50, 0x00]);
    out.put(
        "chunked_request",
        "chunk-too-large",
        &with_control(0, 0, 2, &oversized),
    )?;
    Ok(())
}

fn chunked_response_seeds(out: &mut Out) -> Result {
    let client = fixtures::response_client();
    let header = RequestHeader::parse(&client.header())?;
    for (name, message) in inner_messages()?.into_iter().skip(2) {
        let server = ServerRequest::new(fixtures::server_key(), &header)?;
        let mut encoder = server.response_encoder();
        let mut body = encoder.nonce().to_vec();
        // One chunk per flush, as the egress streams SSE.
        let (lead, last) = message.split_at(message.len() * 2 / 3);
        for piece in lead.chunks(9) {
            body.extend_from_slice(&encoder.seal_chunk(piece)?);
        }
        body.extend_from_slice(&encoder.seal_final(last)?);
        out.put("chunked_response", name, &with_control(0, 0, 0, &body))?;
        out.put(
            "chunked_response",
            &format!("{name}-1byte"),
            &with_control(1, 0, 0, &body),
        )?;
        out.put(
            "chunked_response",
            &format!("{name}-random"),
            &with_control(180, 5, 0, &body),
        )?;
    }
    let server = ServerRequest::new(fixtures::server_key(), &header)?;
    let mut encoder = server.response_encoder();
    let nonce = encoder.nonce().to_vec();
    let body = [&nonce[..], &encoder.seal_final(b"")?].concat();
    out.put("chunked_response", "empty", &with_control(0, 0, 0, &body))?;
    out.put(
        "chunked_response",
        "nonce-only",
        &with_control(3, 0, 0, &nonce),
    )?;
    out.put(
        "chunked_response",
        "short-final",
        &with_control(0, 0, 0, &body[..body.len() - 1]),
    )?;
    Ok(())
}

fn signer() -> Result<(EcdsaKeyPair, Value)> {
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        fixtures::AS_SIGNER_KEY_PKCS8,
    )
    .map_err(|e| format!("signer key: {e}"))?;
    let point = key.public_key().as_ref().to_vec();
    let leaf = pem_certificates(fixtures::AS_SIGNER_PEM.as_bytes())?;
    let ca = pem_certificates(fixtures::AS_CA_PEM.as_bytes())?;
    let x5c: Vec<String> = leaf
        .iter()
        .chain(ca.iter())
        .map(|der| URL_SAFE_NO_PAD.encode(der))
        .collect();
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "x5c": x5c,
    });
    Ok((key, jwk))
}

/// A compact JWS as the sample Attestation Service signs it (ES256, JWK with x5c in the header).
fn sign(claims: &Value) -> Result<String> {
    let (key, jwk) = signer()?;
    let header = json!({"typ": "JWT", "alg": "ES256", "jwk": jwk});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|e| format!("sign: {e}"))?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// EAR claims of the trustee EAR broker with one `cpu0` submodule.
fn ear_claims(runtime_data: &serde_json::Map<String, Value>, status: &str, policy: &str) -> Value {
    json!({
        "eat_profile": tng_attest::verify::EAR_PROFILE,
        "iat": fixtures::VERIFY_AT_UNIX,
        "exp": fixtures::TOKEN_EXP,
        "ear.verifier-id": {"developer": "tng-fuzz", "build": "seed"},
        "submods": {
            "cpu0": {
                "ear.status": status,
                "ear.trustworthiness-vector": {
                    "configuration": 2, "executables": 3, "file-system": 2, "hardware": 2
                },
                "ear.appraisal-policy-id": policy,
                "ear.veraison.annotated-evidence": {
                    "sample": {"svn": "1", "report_data": "00"},
                    "runtime_data_claims": runtime_data,
                }
            }
        }
    })
}

fn ear_token(
    runtime_data: &serde_json::Map<String, Value>,
    status: &str,
    policy: &str,
) -> Result<String> {
    sign(&ear_claims(runtime_data, status, policy))
}

fn simple_claims(runtime_data: &serde_json::Map<String, Value>) -> Value {
    json!({
        "iss": "CoCo-Attestation-Service",
        "iat": fixtures::VERIFY_AT_UNIX,
        "nbf": fixtures::VERIFY_AT_UNIX,
        "exp": fixtures::TOKEN_EXP,
        "jti": "1",
        "tee": "sample",
        "evaluation-reports": [{"policy-id": fixtures::POLICY_ID, "policy-hash": "00"}],
        "tcb-status": "{}",
        "customized_claims": {"init_data": null, "runtime_data": runtime_data}
    })
}

fn as_token_seeds(out: &mut Out) -> Result {
    let expected = fixtures::expected_claims();
    let token = |t: String| [&[0u8][..], t.as_bytes()].concat();
    out.put(
        "as_token",
        "ear-valid",
        &token(ear_token(expected, "affirming", fixtures::POLICY_ID)?),
    )?;
    out.put(
        "as_token",
        "ear-warning",
        &token(ear_token(expected, "warning", fixtures::POLICY_ID)?),
    )?;
    out.put(
        "as_token",
        "ear-other-policy",
        &token(ear_token(expected, "affirming", "other")?),
    )?;
    let client = client_claims(None, &STANDARD.encode(fixtures::sender_public()));
    out.put(
        "as_token",
        "ear-client",
        &token(ear_token(&client, "affirming", fixtures::POLICY_ID)?),
    )?;
    out.put(
        "as_token",
        "simple-valid",
        &token(sign(&simple_claims(expected))?),
    )?;
    let mut expired = ear_claims(expected, "affirming", fixtures::POLICY_ID);
    expired["exp"] = json!(fixtures::VERIFY_AT_UNIX - 3600);
    out.put("as_token", "ear-expired", &token(sign(&expired)?))?;
    let valid = ear_token(expected, "affirming", fixtures::POLICY_ID)?;
    let tampered = format!("{}A", &valid[..valid.len() - 1]);
    out.put("as_token", "bad-signature", &token(tampered))?;
    out.put("as_token", "not-jws", &token("a.b".into()))?;
    // The payloads alone, for the claim checks.
    let payload = |claims: Value| [&[1u8][..], claims.to_string().as_bytes()].concat();
    out.put(
        "as_token",
        "claims-ear",
        &payload(ear_claims(expected, "affirming", fixtures::POLICY_ID)),
    )?;
    out.put(
        "as_token",
        "claims-simple",
        &payload(simple_claims(expected)),
    )?;
    out.put(
        "as_token",
        "claims-two-submods",
        &payload(json!({
            "eat_profile": tng_attest::verify::EAR_PROFILE,
            "exp": 1,
            "submods": {
                "cpu0": {"ear.status": "affirming", "ear.appraisal-policy-id": "a",
                         "ear.trustworthiness-vector": {}},
                "gpu0": {"ear.status": "affirming", "ear.appraisal-policy-id": "b",
                         "ear.trustworthiness-vector": {}}
            }
        })),
    )?;
    Ok(())
}

fn key_config_seeds(out: &mut Out, token: &str) -> Result {
    let config = fixtures::hpke_key_config();
    let evidence = CocoEvidence::new(
        "sample",
        br#"{"svn":"1","report_data":"AAAA"}"#,
        Some(br#"{"sampledevice":{"svn":"2"}}"#),
        canonical_claims(fixtures::expected_claims()),
    );
    out.put(
        "key_config",
        "response-plain",
        serde_json::to_string(&KeyConfigResponse {
            hpke_key_config: config.clone(),
            attestation_info: None,
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "response-passport",
        serde_json::to_string(&KeyConfigResponse {
            hpke_key_config: config.clone(),
            attestation_info: Some(AttestationInfo::Passport {
                attestation_result: token.to_owned(),
                as_provider: Some("coco".into()),
            }),
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "response-background-check",
        serde_json::to_string(&KeyConfigResponse {
            hpke_key_config: config.clone(),
            attestation_info: Some(AttestationInfo::BackgroundCheck {
                evidence: serde_json::to_value(&evidence)?,
                aa_provider: None,
            }),
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "request-empty",
        serde_json::to_string(&KeyConfigRequest::default())?.as_bytes(),
    )?;
    out.put(
        "key_config",
        "request-background-check",
        serde_json::to_string(&KeyConfigRequest {
            attestation_request: Some(AttestationRequest::BackgroundCheck {
                challenge_token: fixtures::CHALLENGE.into(),
            }),
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "verify-request",
        serde_json::to_string(&VerifyRequest {
            evidence: serde_json::to_value(&evidence)?,
            aa_provider: Some("coco".into()),
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "verify-response",
        serde_json::to_string(&VerifyResponse {
            attestation_result: token.to_owned(),
            as_provider: None,
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "challenge",
        serde_json::to_string(&ChallengeResponse {
            challenge_token: fixtures::CHALLENGE.into(),
        })?
        .as_bytes(),
    )?;
    out.put(
        "key_config",
        "error",
        serde_json::to_string(&ErrorBody::new("NoActiveKey", "retry shortly"))?.as_bytes(),
    )?;
    // Binary lists: ours, two keys, an unknown KEM entry, a truncated one.
    let key = fixtures::server_key().config().clone();
    let list = encode_key_config_list(std::slice::from_ref(&key));
    out.put("key_config", "list", &list)?;
    let second = KeyConfig {
        key_id: 9,
        aeads: vec![Aead::Aes128Gcm],
        ..key
    };
    out.put(
        "key_config",
        "list-two",
        &encode_key_config_list(&[second, fixtures::server_key().config().clone()]),
    )?;
    let unknown_kem = [&[0u8, 9, 7, 0x00, 0x10][..], &[0xab; 6]].concat();
    out.put(
        "key_config",
        "list-unknown-kem",
        &[&unknown_kem[..], &list].concat(),
    )?;
    out.put("key_config", "list-truncated", &list[..list.len() - 2])?;
    Ok(())
}

/// One ttrpc RESPONSE frame carrying `payload` as a successful `Response`, or `status`.
fn ttrpc_frame(stream_id: u32, payload: Vec<u8>, status: Option<(ttrpc::Code, &str)>) -> Vec<u8> {
    let mut response = ttrpc::Response::new();
    response.payload = payload;
    let mut st = ttrpc::Status::new();
    if let Some((code, message)) = status {
        st.code = code.into();
        st.message = message.into();
    }
    response.status = protobuf::MessageField::some(st);
    let payload = response.write_to_bytes().unwrap_or_default();
    let frame = GenMessage {
        header: MessageHeader::new_response(stream_id, payload.len() as u32),
        payload,
    };
    let mut bytes: Vec<u8> = frame.header.into();
    bytes.extend_from_slice(&frame.payload);
    bytes
}

fn aa_response_seeds(out: &mut Out) -> Result {
    let mut evidence = GetEvidenceResponse::new();
    evidence.Evidence = br#"{"svn":"1","report_data":"q83vEjRWeJA="}"#.to_vec();
    let evidence = evidence.write_to_bytes()?;
    let mut tee = GetTeeTypeResponse::new();
    tee.tee = "sample".into();
    let tee = tee.write_to_bytes()?;
    out.put(
        "aa_response",
        "evidence-frame",
        &ttrpc_frame(1, evidence.clone(), None),
    )?;
    out.put(
        "aa_response",
        "tee-frame",
        &ttrpc_frame(3, tee.clone(), None),
    )?;
    out.put(
        "aa_response",
        "three-frames",
        &[
            ttrpc_frame(1, evidence.clone(), None),
            ttrpc_frame(3, tee.clone(), None),
            ttrpc_frame(5, Vec::new(), None),
        ]
        .concat(),
    )?;
    out.put(
        "aa_response",
        "error-status",
        &ttrpc_frame(
            1,
            Vec::new(),
            Some((ttrpc::Code::INTERNAL, "get evidence failed")),
        ),
    )?;
    out.put("aa_response", "evidence-payload", &evidence)?;
    out.put("aa_response", "tee-payload", &tee)?;
    out.put("aa_response", "asr-info", br#"{"tee":"tdx","version":"1"}"#)?;
    let mut oversized: Vec<u8> = MessageHeader::new_response(1, u32::MAX).into();
    oversized.extend_from_slice(&[0; 4]);
    out.put("aa_response", "oversized-frame", &oversized)?;
    Ok(())
}

/// Every raw string literal (`r#"…"#`) of a Rust source file.
fn raw_strings(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("r#\"") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("\"#") else {
            break;
        };
        found.push(after[..end].to_owned());
        rest = &after[end + 2..];
    }
    found
}

/// JSON blocks of the founding scenario: from a line `{` to the next line `}`.
fn scenario_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "{") => current = Some(vec![line]),
            (Some(lines), "}") => {
                lines.push(line);
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
}

fn config_seeds(out: &mut Out, scenario: Option<&str>) -> Result {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tng-config/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    for file in files {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("test")
            .to_owned();
        for (i, config) in raw_strings(&std::fs::read_to_string(&file)?)
            .into_iter()
            .enumerate()
        {
            out.put("config", &format!("{stem}-{i}"), config.as_bytes())?;
        }
    }
    if let Some(path) = scenario {
        for (i, block) in scenario_blocks(&std::fs::read_to_string(path)?)
            .into_iter()
            .enumerate()
        {
            // The scenario leaves the AS address as a placeholder.
            let block = block.replace("<attestation-service-url>", "http://198.18.0.9:8080");
            out.put("config", &format!("scenario-{i}"), block.as_bytes())?;
        }
    }
    Ok(())
}

/// Certificates as a rats-TLS peer presents them (selector 0) and the evidence extension's
/// content alone (selector 1): ours in both models, with a broken binding, and the upstream
/// 2.12.0 certificate the tng-ratstls known-answer tests use.
fn ratstls_cert_seeds(out: &mut Out, token: &str) -> Result {
    use tng_ratstls::{binding, cert, Evidence};
    let key = cert::generate_key()?;
    let spki = cert::spki_der(&key);
    let bound = canonical_claims(&binding::claims_for_spki(&spki));
    let sample = br#"{"svn":"1","report_data":"AAAA"}"#;
    let variants = [
        (
            "coco",
            Evidence::Coco(CocoEvidence::new("sample", sample, None, bound.clone())),
        ),
        (
            "coco-additional",
            Evidence::Coco(CocoEvidence::new("sample", sample, Some(b"{}"), bound)),
        ),
        (
            "coco-unbound",
            Evidence::Coco(CocoEvidence::new(
                "sample",
                sample,
                None,
                r#"{"pubkey-hash":"someone else"}"#.to_owned(),
            )),
        ),
        ("token", Evidence::Token(token.to_owned())),
    ];
    for (name, evidence) in variants {
        let der = cert::build(&key, &evidence, std::time::SystemTime::now())?;
        out.put(
            "ratstls_cert",
            &format!("cert-{name}"),
            &[&[0u8][..], der.as_ref()].concat(),
        )?;
        out.put(
            "ratstls_cert",
            &format!("evidence-{name}"),
            &[&[1u8][..], &evidence.encode()?].concat(),
        )?;
    }
    let upstream =
        include_str!("../../tng-ratstls/tests/data/upstream-2.12.0-background-check.pem");
    for der in pem_certificates(upstream.as_bytes())? {
        out.put(
            "ratstls_cert",
            "cert-upstream-2.12.0",
            &[&[0u8][..], der.as_ref()].concat(),
        )?;
    }
    Ok(())
}

/// Both directions of real exchanges between our ingress and egress, each side's input whole
/// and in small reads (flags: bit 0 = drive the ingress, bit 1 = service refuses).
fn connect_stream_seeds(out: &mut Out) -> Result {
    for session in tng_fuzz::connect_stream::recorded_sessions() {
        let refuse = if session.refused { 2 } else { 0 };
        for (mode, cut) in [(0, "whole"), (7, "7-byte-reads")] {
            let name = format!("{}-to-egress-{cut}", session.name);
            out.put(
                "connect_stream",
                &name,
                &with_control(mode, 0, refuse, &session.to_egress),
            )?;
            let name = format!("{}-to-ingress-{cut}", session.name);
            out.put(
                "connect_stream",
                &name,
                &with_control(mode, 0, 1, &session.to_ingress),
            )?;
        }
    }
    Ok(())
}
