//! Test fixtures: a generated P-256 token-signer chain (rcgen), ES256 token signing (aws-lc-rs),
//! EAR/Simple claim builders, a tiny canned HTTP server and a ttrpc Attestation Agent.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

pub const EAR_PROFILE: &str = "tag:github.com,2024:confidential-containers/Trustee";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A CA and a token-signer certificate it issued (no EKU, like the AS CI setup).
pub struct SignerChain {
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    pub leaf_der: CertificateDer<'static>,
    pub leaf_pem: String,
    signing_key: EcdsaKeyPair,
    /// `0x04 ‖ x ‖ y` of the signer key.
    pub point: Vec<u8>,
}

impl SignerChain {
    pub fn generate(name: &str) -> Self {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let mut leaf_params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} token signer"));
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let signing_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &leaf_key.serialize_der())
                .expect("aws-lc-rs reads rcgen's PKCS#8");
        Self {
            ca_der: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            leaf_der: leaf_cert.der().clone(),
            leaf_pem: leaf_cert.pem(),
            point: leaf_key.public_key_raw().to_vec(),
            signing_key,
        }
    }

    /// The embedded JWK; `x5c` entries base64url-nopad, or standard base64 with line breaks.
    pub fn jwk(&self, standard_x5c: bool) -> Value {
        let encode = |der: &[u8]| {
            if standard_x5c {
                let text = STANDARD.encode(der);
                let lines: Vec<String> = text
                    .as_bytes()
                    .chunks(64)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                lines.join("\n")
            } else {
                URL_SAFE_NO_PAD.encode(der)
            }
        };
        json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&self.point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.point[33..65]),
            "x5c": [encode(self.leaf_der.as_ref()), encode(self.ca_der.as_ref())],
        })
    }

    /// Signs `claims` under `header` (ES256 over `b64(header).b64(claims)`).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signing_key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("sign");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// A token as the AS issues it: header `{typ, alg: ES256, jwk}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"typ": "JWT", "alg": "ES256", "jwk": self.jwk(false)}),
            claims,
        )
    }

    /// The chain PEM as `/certificate` serves it (leaf, then CA).
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.leaf_pem, self.ca_pem)
    }
}

/// EAR claims with one `cpu0` submodule.
pub fn ear_claims(runtime_data: &Value, status: &str, policy_id: &str, exp: u64) -> Value {
    json!({
        "eat_profile": EAR_PROFILE,
        "iat": exp.saturating_sub(300),
        "exp": exp,
        "ear.verifier-id": {"developer": "test", "build": "0"},
        "submods": {
            "cpu0": {
                "ear.status": status,
                "ear.trustworthiness-vector": {
                    "configuration": 2, "executables": 3, "file-system": 2, "hardware": 2
                },
                "ear.appraisal-policy-id": policy_id,
                "ear.veraison.annotated-evidence": {
                    "report_data": "00",
                    "runtime_data_claims": runtime_data,
                    "sample": {"svn": "1"}
                }
            }
        }
    })
}

/// Simple-broker claims.
pub fn simple_claims(runtime_data: &Value, policy_ids: &[&str], exp: u64) -> Value {
    let reports: Vec<Value> = policy_ids
        .iter()
        .map(|id| json!({"policy-id": id, "policy-hash": "00"}))
        .collect();
    json!({
        "iss": "CoCo-Attestation-Service",
        "iat": exp.saturating_sub(300),
        "nbf": exp.saturating_sub(300),
        "exp": exp,
        "jti": "1",
        "tee": "sample",
        "evaluation-reports": reports,
        "tcb-status": "{}",
        "customized_claims": {"init_data": null, "runtime_data": runtime_data}
    })
}

pub fn server_runtime_data(challenge: &str) -> Value {
    json!({
        "challenge_token": challenge,
        "hpke_key_config": {
            "expire_timestamp": 3688063588u64,
            "encoded_key_config_list": "AC0AACCfX/KrJJGR5JZK02t8Hy+dagimzJFRxh85w8dEAND+dwAIAAEAAwABAAE="
        }
    })
}

pub fn as_map(value: &Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

/// A request the canned server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One canned answer: status, content type, body.
pub type Answer = (StatusCode, &'static str, String);

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

/// A tiny HTTP/1 server on 127.0.0.1 that answers each request with `handler` and records it.
pub struct CannedServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<VecDeque<Seen>>>,
}

impl CannedServer {
    pub async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(VecDeque::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen_task = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen_task.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let handler = handler.clone();
                        let seen = seen.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            // Test server: bounded read of small canned request bodies.
                            #[allow(clippy::disallowed_methods)]
                            let body = Limited::new(body, 1 << 20)
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let record = Seen {
                                method: parts.method,
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str().to_owned())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let (status, content_type, text) = handler(&record);
                            seen.lock().expect("lock").push_back(record);
                            let response = Response::builder()
                                .status(status)
                                .header("content-type", content_type)
                                .body(Full::new(Bytes::from(text)))
                                .expect("response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").iter().cloned().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// A ttrpc Attestation Agent with the `sample` TEE.

use tng_attest::aa::proto::{
    create_attestation_agent_service, AttestationAgentService, GetAdditionalEvidenceRequest,
    GetEvidenceRequest, GetEvidenceResponse, GetTeeTypeRequest, GetTeeTypeResponse,
};

/// How the fake AA answers.
#[derive(Clone, Default)]
pub struct FakeAaBehaviour {
    /// `GetTeeType` answer (default `sample`).
    pub tee: Option<String>,
    /// `GetEvidence` fails with INTERNAL.
    pub fail_evidence: bool,
    /// `GetAdditionalEvidence` answer; `None` = empty bytes.
    pub additional: Option<Vec<u8>>,
    /// `GetAdditionalEvidence` fails.
    pub fail_additional: bool,
}

/// One call the fake AA served: method, RuntimeData, timeout_nano.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaCall {
    pub method: &'static str,
    pub runtime_data: Vec<u8>,
    pub timeout_nano: i64,
}

pub struct FakeAa {
    behaviour: FakeAaBehaviour,
    pub calls: Arc<Mutex<Vec<AaCall>>>,
}

/// The gc(inclavare) sample evidence for `runtime_data`.
pub fn sample_evidence(runtime_data: &[u8]) -> Vec<u8> {
    json!({
        "svn": "1",
        "report_data": base64::engine::general_purpose::STANDARD.encode(runtime_data),
        "measure_register": "00".repeat(32),
        "cc_eventlog": null
    })
    .to_string()
    .into_bytes()
}

#[async_trait::async_trait]
impl AttestationAgentService for FakeAa {
    async fn get_evidence(
        &self,
        ctx: &ttrpc::r#async::TtrpcContext,
        req: GetEvidenceRequest,
    ) -> ttrpc::Result<GetEvidenceResponse> {
        self.record("GetEvidence", &req.RuntimeData, ctx.timeout_nano);
        if self.behaviour.fail_evidence {
            return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::INTERNAL,
                "sample attester broke",
            )));
        }
        Ok(GetEvidenceResponse {
            Evidence: sample_evidence(&req.RuntimeData),
            ..Default::default()
        })
    }

    async fn get_tee_type(
        &self,
        ctx: &ttrpc::r#async::TtrpcContext,
        _req: GetTeeTypeRequest,
    ) -> ttrpc::Result<GetTeeTypeResponse> {
        self.record("GetTeeType", &[], ctx.timeout_nano);
        Ok(GetTeeTypeResponse {
            tee: self
                .behaviour
                .tee
                .clone()
                .unwrap_or_else(|| "sample".into()),
            ..Default::default()
        })
    }

    async fn get_additional_evidence(
        &self,
        ctx: &ttrpc::r#async::TtrpcContext,
        req: GetAdditionalEvidenceRequest,
    ) -> ttrpc::Result<GetEvidenceResponse> {
        self.record("GetAdditionalEvidence", &req.RuntimeData, ctx.timeout_nano);
        if self.behaviour.fail_additional {
            return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::UNIMPLEMENTED,
                "no devices",
            )));
        }
        Ok(GetEvidenceResponse {
            Evidence: self.behaviour.additional.clone().unwrap_or_default(),
            ..Default::default()
        })
    }
}

impl FakeAa {
    fn record(&self, method: &'static str, runtime_data: &[u8], timeout_nano: i64) {
        self.calls.lock().expect("lock").push(AaCall {
            method,
            runtime_data: runtime_data.to_vec(),
            timeout_nano,
        });
    }
}

/// A running fake AA on a unix socket.
pub struct FakeAaServer {
    server: ttrpc::r#async::Server,
    pub addr: String,
    pub calls: Arc<Mutex<Vec<AaCall>>>,
}

impl FakeAaServer {
    /// Serves at `unix://{path}` (removing a stale socket file first).
    pub async fn start(path: &std::path::Path, behaviour: FakeAaBehaviour) -> Self {
        let _ = std::fs::remove_file(path);
        let addr = format!("unix://{}", path.display());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = create_attestation_agent_service(Arc::new(FakeAa {
            behaviour,
            calls: calls.clone(),
        }));
        let mut server = ttrpc::r#async::Server::new()
            .bind(&addr)
            .expect("bind the AA socket")
            .register_service(service);
        server.start().await.expect("start the AA");
        Self {
            server,
            addr,
            calls,
        }
    }

    pub fn calls(&self) -> Vec<AaCall> {
        self.calls.lock().expect("lock").clone()
    }

    pub async fn stop(mut self) {
        let _ = self.server.shutdown().await;
    }
}
