//! `tng tools rats-tls gen | dump | verify` on the real binary with the sample attestation
//! stack: certificates of ours verified by upstream 2.12.0's tool and the reverse, live
//! certificates dumped from our egresses (raw and multiplexed) and from upstream's, and every
//! refusal (tampered, wrong policy, wrong model, not attested) with its reason and exit 1.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{json, Value};
use tng_e2e::*;

use super::run::{tool, upstream_tool, ToolOutput};
use super::stack::*;

/// Upstream's tools read flat structs without the config's defaults: every field spelled out.
fn upstream_attest(aa: &Aa) -> String {
    json!({"model": "background_check", "aa_provider": "coco", "aa_type": "uds",
           "aa_addr": aa.addr()})
    .to_string()
}

fn verify(service: &As, model: &str, policy: &str) -> String {
    json!({"model": model, "as_provider": "coco", "as_type": "restful", "as_addr": service.url(),
           "policy_ids": [policy], "trusted_certs_paths": null,
           "verify_signer_transparency": false, "skip_as_token_cert_verify": false})
    .to_string()
}

/// Our `tng tools rats-tls verify --cert CERT --verify VERIFY [--json]`.
fn verify_cert(cert: &Path, verify: &str, json: bool) -> ToolOutput {
    let mut args = vec![
        "tools",
        "rats-tls",
        "verify",
        "--cert",
        path_str(cert),
        "--verify",
        verify,
    ];
    if json {
        args.push("--json");
    }
    tool(&args)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn rats_tls_egress(port: u16, attest: Option<Value>, multiplex: bool) -> Value {
    let mut entry = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": "127.0.0.1", "port": free_port()}},
        "rats_tls": {"multiplex": multiplex},
    });
    match attest {
        Some(attest) => entry["attest"] = attest,
        None => entry["no_ra"] = json!(true),
    }
    json!({"add_egress": [entry]})
}

#[test]
fn rats_tls_gen_and_verify_both_ways_with_upstream_2_12_0() {
    let aa = Aa::start(&[]);
    let service = As::start(&[("strict", CONTRAINDICATING_POLICY)], &[]);
    let dir = test_dir("rats-tls-gen");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));

    // Ours, from the short form an `add_egress` entry accepts.
    let attest = attest_bg(&aa).to_string();
    let out = tool(&[
        "tools",
        "rats-tls",
        "gen",
        "--attest",
        &attest,
        "--cert-out",
        path_str(&cert),
        "--key-out",
        path_str(&key),
        "--json",
    ])
    .success();
    let doc = out.json();
    assert_eq!(doc["evidence"]["model"], "background_check", "{doc}");
    assert_eq!(doc["evidence"]["tee_type"], "sample", "{doc}");
    assert_eq!(doc["binding"]["ok"], true, "{doc}");
    assert_eq!(doc["subject"], "O=Inclavare Containers, CN=TNG", "{doc}");
    let pubkey_hash = doc["pubkey_hash"].as_str().expect("pubkey_hash").to_owned();
    assert!(
        doc["evidence"]["aa_runtime_data"]
            .as_str()
            .is_some_and(|d| d.contains(&pubkey_hash)),
        "{doc}"
    );
    let pem = std::fs::read_to_string(&cert).expect("cert written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    let key_pem = std::fs::read_to_string(&key).expect("key written");
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{key_pem}"
    );
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the private key must not be readable by others"
    );

    // Verified by ours, for a person and for a script.
    let bg = verify(&service, "background_check", "default");
    let out = verify_cert(&cert, &bg, false).success();
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "attestation      verified, model background_check"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\n  policy ids     default\n"),
        "{}",
        out.stdout
    );
    let doc = verify_cert(&cert, &bg, true).success().json();
    assert_eq!(doc["attestation"]["verified"], true, "{doc}");
    assert_eq!(
        doc["attestation"]["policy_ids"],
        json!(["default"]),
        "{doc}"
    );
    assert_eq!(doc["attestation"]["ear_status"], "cpu0=affirming", "{doc}");

    // Refusals: each names its reason, exits 1.
    let strict = verify(&service, "background_check", "strict");
    verify_cert(&cert, &strict, false).failure_with(&["attestation refused", "contraindicated"]);
    let passport = verify(&service, "passport", "default");
    verify_cert(&cert, &passport, false).failure_with(&["attestation refused", "model mismatch"]);
    let mut der = {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64")
    };
    let last = der.len() - 40;
    der[last] ^= 0x01;
    let tampered = dir.join("tampered.der");
    std::fs::write(&tampered, &der).expect("write tampered");
    verify_cert(&tampered, &bg, false).failure_with(&["self-signature does not verify"]);

    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    // Upstream's tool verifies our certificate ...
    let out = upstream_tool(
        &upstream,
        &[
            "tools",
            "rats-tls",
            "verify",
            "--cert",
            path_str(&cert),
            "--verify",
            &bg,
        ],
    )
    .success();
    assert!(out.stdout.contains("verified OK"), "{out:?}");
    // ... and ours verifies upstream's, printed on stdout as upstream prints it.
    let out = upstream_tool(
        &upstream,
        &[
            "tools",
            "rats-tls",
            "gen",
            "--attest",
            &upstream_attest(&aa),
        ],
    )
    .success();
    let theirs = dir.join("upstream.pem");
    let cert_pem: String = out
        .stdout
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .collect();
    std::fs::write(&theirs, cert_pem).expect("write upstream cert");
    let doc = verify_cert(&theirs, &bg, true).success().json();
    assert_eq!(doc["attestation"]["verified"], true, "{doc}");
    assert_eq!(doc["evidence"]["model"], "background_check", "{doc}");
}

#[test]
fn rats_tls_passport_certificate_carries_its_token() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let attest = attest_passport(&aa, &service).to_string();
    // Without --cert-out / --key-out: both PEMs on stdout, the report on stderr.
    let out = tool(&["tools", "rats-tls", "gen", "--attest", &attest]).success();
    assert!(
        out.stdout.starts_with("-----BEGIN CERTIFICATE-----\n"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("-----BEGIN PRIVATE KEY-----\n"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("evidence         passport token (CBOR tag 0xc0c001)"),
        "{out:?}"
    );
    assert!(out.stderr.contains("policy ids     default"), "{out:?}");
    let dir = test_dir("rats-tls-passport");
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, &out.stdout).expect("write");
    let doc = verify_cert(&cert, &verify(&service, "passport", "default"), true)
        .success()
        .json();
    assert_eq!(doc["attestation"]["verified"], true, "{doc}");
    assert_eq!(doc["attestation"]["model"], "passport", "{doc}");
    assert!(doc["evidence"]["claims"]["exp"].is_u64(), "{doc}");
    verify_cert(
        &cert,
        &verify(&service, "background_check", "default"),
        false,
    )
    .failure_with(&["attestation refused", "model mismatch"]);
}

#[test]
fn rats_tls_dump_of_live_egresses() {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let bg = verify(&service, "background_check", "default");
    let dir = test_dir("rats-tls-dump");

    for multiplex in [false, true] {
        let port = free_port();
        let _egress = Tng::launch_named(
            "egress",
            rats_tls_egress(port, Some(attest_bg(&aa)), multiplex),
        );
        let endpoint = format!("127.0.0.1:{port}");
        // PEM on stdout (upstream's output), the report on stderr.
        let out = tool(&["tools", "rats-tls", "dump", "--endpoint", &endpoint]).success();
        assert!(
            out.stdout.starts_with("-----BEGIN CERTIFICATE-----\n"),
            "{out:?}"
        );
        let framing = if multiplex {
            "framing          multiplexed (ALPN h2, rats_tls.multiplex: true)"
        } else {
            "framing          raw (ALPN rats-tls, rats_tls.multiplex: false)"
        };
        assert!(out.stderr.contains(framing), "{out:?}");
        let cert = dir.join(format!("ours-{multiplex}.pem"));
        let out = tool(&[
            "tools",
            "rats-tls",
            "dump",
            "--endpoint",
            &endpoint,
            "--cert-out",
            path_str(&cert),
        ])
        .success();
        assert!(out.stdout.contains("wrote"), "{out:?}");
        verify_cert(&cert, &bg, false).success();
    }

    // An egress without `attest` presents a certificate with no evidence.
    let port = free_port();
    let _plain = Tng::launch_named("egress", rats_tls_egress(port, None, false));
    tool(&[
        "tools",
        "rats-tls",
        "dump",
        "--endpoint",
        &format!("127.0.0.1:{port}"),
    ])
    .failure_with(&["is not attested", "CertExtractExtensionFailed"]);
    // Nothing listening.
    let closed = free_port();
    tool(&[
        "tools",
        "rats-tls",
        "dump",
        "--endpoint",
        &format!("127.0.0.1:{closed}"),
    ])
    .failure_with(&["--endpoint 127.0.0.1:", "cannot connect"]);

    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    let port = free_port();
    let _theirs = launch_upstream(
        &upstream,
        "upstream-2.12.0-egress",
        &rats_tls_egress(port, Some(attest_bg(&aa)), false),
        port,
    );
    let cert = dir.join("upstream.pem");
    tool(&[
        "tools",
        "rats-tls",
        "dump",
        "--endpoint",
        &format!("127.0.0.1:{port}"),
        "--cert-out",
        path_str(&cert),
    ])
    .success();
    let doc = verify_cert(&cert, &bg, true).success().json();
    assert_eq!(doc["attestation"]["verified"], true, "{doc}");
}
