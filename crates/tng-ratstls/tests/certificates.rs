//! Known answers against the upstream 2.12.0 certificate of the spec's Appendix A, our own
//! certificates' layout, and every structural refusal with its exact reason.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha384};
use tng_attest::CocoEvidence;
use tng_ratstls::binding::{claims_for_spki, pubkey_hash};
use tng_ratstls::cert::{build, generate_key, spki_der};
use tng_ratstls::{Error, Evidence, ParsedCert};
use x509_parser::prelude::{FromDer, X509Certificate};

const UPSTREAM_PEM: &[u8] = include_bytes!("data/upstream-2.12.0-background-check.pem");
const UPSTREAM_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004ee765ddd8c788c62ba1ef59c78a398243fcb95db12662b26a128141b20f1d0301b07fa18c26d2f7096876cec555496dd4ca210b880cd783b0c2dc3a3cae54eef";
const UPSTREAM_PUBKEY_HASH: &str = "ggFYIEetGXrDua9CJDycOto10r4eOHG9L7OjD+Flx4cCpBPr";
const UPSTREAM_RUNTIME_DATA: &str =
    r#"{"pubkey-hash":"ggFYIEetGXrDua9CJDycOto10r4eOHG9L7OjD+Flx4cCpBPr"}"#;
const UPSTREAM_REPORT_DATA: &str = "5a157284e7676bdd94ff3243a56bd26e5eb8a62af7d34223ed8b1f1f2178171211d8bbe85307927a3442f650492cbcc5";

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

fn upstream_der() -> Vec<u8> {
    CertificateDer::from_pem_slice(UPSTREAM_PEM)
        .expect("PEM")
        .to_vec()
}

fn parse(der: &[u8]) -> Result<ParsedCert, Error> {
    ParsedCert::parse(der, &algorithms())
}

fn refusal(der: &[u8]) -> String {
    parse(der).expect_err("refused").to_string()
}

fn upstream_evidence() -> CocoEvidence {
    match parse(&upstream_der())
        .expect("upstream certificate")
        .evidence
    {
        Evidence::Coco(evidence) => evidence,
        other => panic!("background-check evidence expected, got {other:?}"),
    }
}

#[test]
fn upstream_certificate_known_answers() {
    let der = upstream_der();
    let cert = parse(&der).expect("the upstream certificate passes every structural check");
    assert_eq!(hex::encode(&cert.spki), UPSTREAM_SPKI);
    assert_eq!(pubkey_hash(&cert.spki), UPSTREAM_PUBKEY_HASH);
    assert_eq!(cert.signature_algorithm, "ecdsa-with-SHA256");
    assert_eq!(cert.subject, "O=Inclavare Containers, CN=TNG");
    assert_eq!(
        cert.not_after
            .duration_since(cert.not_before)
            .expect("order"),
        Duration::from_secs(6 * 3600)
    );

    let Evidence::Coco(evidence) = &cert.evidence else {
        panic!("background-check evidence expected");
    };
    assert_eq!(evidence.aa_tee_type, "sample");
    assert_eq!(evidence.aa_runtime_data, UPSTREAM_RUNTIME_DATA);
    assert_eq!(evidence.aa_runtime_data_hash_algo, "sha384");
    assert_eq!(evidence.aa_additional_evidence, None);
    let digest = Sha384::digest(evidence.aa_runtime_data.as_bytes());
    assert_eq!(hex::encode(digest), UPSTREAM_REPORT_DATA);
    // The sample TEE's report data is the digest the AA was given.
    let sample: serde_json::Value =
        serde_json::from_slice(&evidence.evidence_bytes().expect("base64")).expect("JSON");
    assert_eq!(sample["report_data"], STANDARD.encode(digest));
    assert_eq!(sample["svn"], "1");

    let claims = cert.check_binding().expect("bound to its own key");
    assert_eq!(
        serde_json::Value::Object(claims),
        serde_json::json!({"pubkey-hash": UPSTREAM_PUBKEY_HASH})
    );
}

/// Re-encoding the upstream evidence gives upstream's bytes: our encoder writes the same
/// layout (tag with a 4-byte argument, key order, null additional evidence, hash id 7).
#[test]
fn our_encoder_reproduces_the_upstream_extension() {
    let der = upstream_der();
    let (_, cert) = X509Certificate::from_der(&der).expect("DER");
    let ext = cert
        .iter_extensions()
        .find(|e| e.oid.to_id_string() == "2.23.133.5.4.9")
        .expect("evidence extension");
    let ours = Evidence::Coco(upstream_evidence())
        .encode()
        .expect("encode");
    assert_eq!(hex::encode(&ours), hex::encode(ext.value));
}

#[test]
fn tampered_certificate_bytes_fail_the_self_signature() {
    let mut der = upstream_der();
    // One character of the sample evidence's report_data, inside the signed part.
    let at = der
        .windows(11)
        .position(|w| w == b"report_data")
        .expect("report_data in the DER")
        + 16;
    der[at] ^= 0x01;
    assert_eq!(
        refusal(&der),
        "the certificate's self-signature does not verify with its own public key"
    );
}

/// Evidence copied into a certificate for another key: bound to upstream's key, not ours.
#[test]
fn evidence_bound_to_another_key_is_refused() {
    let key = generate_key().expect("key");
    let ours = pubkey_hash(&spki_der(&key));
    let der = build(
        &key,
        &Evidence::Coco(upstream_evidence()),
        SystemTime::now(),
    )
    .expect("build");
    let cert = parse(&der).expect("structurally fine");
    let err = cert.check_binding().expect_err("wrong binding");
    assert_eq!(
        err.to_string(),
        format!(
            "RuntimeDataMismatch: the evidence is bound to pubkey-hash {UPSTREAM_PUBKEY_HASH}, \
             the certificate's public key has pubkey-hash {ours}"
        )
    );
}

#[test]
fn our_certificate_has_the_upstream_profile() {
    let key = generate_key().expect("key");
    let spki = spki_der(&key);
    let runtime = tng_attest::claims::canonical_claims(&claims_for_spki(&spki));
    let evidence = CocoEvidence::new("sample", br#"{"svn":"1"}"#, None, runtime.clone());
    let before = SystemTime::now();
    let der = build(&key, &Evidence::Coco(evidence.clone()), before).expect("build");

    let cert = parse(&der).expect("our own certificate parses");
    assert_eq!(cert.spki, spki);
    assert_eq!(cert.subject, "O=Inclavare Containers, CN=TNG");
    assert_eq!(cert.evidence, Evidence::Coco(evidence));
    assert_eq!(
        serde_json::Value::Object(cert.check_binding().expect("bound")),
        serde_json::json!({"pubkey-hash": pubkey_hash(&spki)})
    );
    assert_eq!(runtime.len(), 66, "{runtime}");

    let (_, x509) = X509Certificate::from_der(&der).expect("DER");
    assert_eq!(x509.raw_serial(), &[42]);
    assert_eq!(x509.issuer().as_raw(), x509.subject().as_raw());
    let seconds = |t: x509_parser::time::ASN1Time| t.timestamp();
    assert_eq!(
        seconds(x509.validity().not_after) - seconds(x509.validity().not_before),
        6 * 3600
    );
    let oids: Vec<(String, bool)> = x509
        .iter_extensions()
        .map(|e| (e.oid.to_id_string(), e.critical))
        .collect();
    for (oid, critical) in [
        ("2.5.29.14", false),
        ("2.5.29.35", false),
        ("2.5.29.19", true),
        ("2.5.29.15", true),
        ("2.23.133.5.4.9", false),
        ("2.23.133.5.4.2", false),
    ] {
        assert!(
            oids.contains(&(oid.to_owned(), critical)),
            "{oid} (critical {critical}) missing from {oids:?}"
        );
    }
    let manifest = x509
        .iter_extensions()
        .find(|e| e.oid.to_id_string() == "2.23.133.5.4.2")
        .expect("manifest");
    assert!(manifest.value.is_empty());
    let usage = x509
        .iter_extensions()
        .find(|e| e.oid.to_id_string() == "2.5.29.15")
        .expect("key usage");
    assert_eq!(usage.value, &[0x03, 0x02, 0x03, 0xe8]);
    let basic = x509
        .iter_extensions()
        .find(|e| e.oid.to_id_string() == "2.5.29.19")
        .expect("basic constraints");
    assert_eq!(basic.value, &[0x30, 0x00], "CA:FALSE as an empty SEQUENCE");
}

#[test]
fn passport_token_certificate_round_trips() {
    let key = generate_key().expect("key");
    let token = Evidence::Token("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into());
    let der = build(&key, &token, SystemTime::now()).expect("build");
    let cert = parse(&der).expect("parses");
    assert_eq!(cert.evidence, token);
    cert.check_binding()
        .expect("a token's binding is checked with the token");
}

#[test]
fn certificate_without_evidence_is_refused() {
    let plain = rcgen::generate_simple_self_signed(vec!["tng".to_owned()]).expect("cert");
    // rcgen's simple certificate has issuer = subject, so the refusal is about the extension.
    assert_eq!(
        refusal(plain.cert.der()),
        "CertExtractExtensionFailed: the certificate has no evidence extension 2.23.133.5.4.9 \
         (is the peer configured with `attest`?)"
    );
}

#[test]
fn certificate_issued_by_another_name_is_refused() {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Some CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let leaf = CertificateParams::new(vec!["tng".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("sign");
    assert_eq!(
        refusal(leaf.der()),
        "CertIssuerMismatch: the certificate's issuer differs from its subject"
    );
}

#[test]
fn p384_certificate_is_an_unknown_signature_algorithm() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let cert = CertificateParams::new(vec!["tng".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("sign");
    assert_eq!(
        refusal(cert.der()),
        "UnknownSignatureAlgo: signature 1.2.840.10045.4.3.3 with a 1.2.840.10045.2.1 \
         (1.3.132.0.34) key"
    );
}

#[test]
fn garbage_is_not_a_certificate() {
    assert!(refusal(b"not DER").starts_with("the certificate is not valid X.509 DER: "));
}
