//! `tng tools ohttp dump | verify | decode` and `tng tools key-sync` end to end, on the real
//! binary, against our egress and an upstream 2.12.0 egress, without attestation and with the
//! sample attestation stack (`tng-devkit aa` / `tng-devkit as`), in both models.
//!
//! - dump: the report names the key the egress serves, its suites and expiry; `--json` is a
//!   document a script reads; `--out-dir` writes exactly upstream's bundle file names; our
//!   bundle and upstream's tool's bundle of the same egress agree;
//! - verify: a dumped bundle verifies; a tampered one (key config, evidence, token) is refused
//!   with the reason and a non-zero exit; bundles written by upstream's tool verify too;
//! - decode: offline, the derived files match dump's;
//! - bad flags and files: each message names the flag or file;
//! - rats-tls gen / dump / verify (`tools/rats_tls.rs`): certificates of ours and of upstream
//!   2.12.0 verified by both tools, live certificates dumped, every refusal with its reason;
//! - key-sync (`tools/key_sync.rs`): a receive-only member of a three-node cluster writes the
//!   keys, and an egress reading its `current/` serves the cluster's keys through rotations
//!   with zero failed requests.

#[path = "tools/key_sync.rs"]
mod key_sync;
#[path = "tools/rats_tls.rs"]
mod rats_tls_tools;
#[path = "tools/run.rs"]
mod run;
#[path = "attestation/stack.rs"]
#[allow(dead_code)]
mod stack;

use std::path::Path;

use base64::Engine as _;
use run::tool;
use serde_json::{json, Value};
use stack::*;
use tng_e2e::*;

const BUNDLE: [&str; 3] = ["hpke.base64", "hpke.json", "raw.json"];
/// With the sample TEE: its evidence has no quote and no event log, so (as upstream) no
/// `quote.bin` and no `eventlog.json`.
const ATTESTED_BUNDLE: [&str; 5] = [
    "attestation_result.claims.json",
    "attestation_result.jwt",
    "hpke.base64",
    "hpke.json",
    "raw.json",
];

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// The public key (hex) inside a bundle's `hpke.base64`.
fn public_key_of(encoded: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .expect("base64");
    // u16 length, key id, u16 KEM, 32-byte key.
    hex::encode(&bytes[5..37])
}

/// Asserts the parts of a dump every egress must show, and returns the `--json` document.
fn assert_dump(url: &str, expected_key: Option<&str>, extra: &[&str]) -> Value {
    let mut args = vec!["tools", "ohttp", "dump", "--endpoint", url];
    args.extend_from_slice(extra);
    let human = tool(&args).success();
    let mut json_args = args.clone();
    json_args.push("--json");
    let doc = tool(&json_args).success().json();
    let key = doc["keys"][0]["public_key"]
        .as_str()
        .expect("public_key")
        .to_owned();
    if let Some(expected) = expected_key {
        assert_eq!(key, expected, "{doc}");
    }
    assert_eq!(key.len(), 64, "{doc}");
    assert!(human.stdout.contains(&key), "{}", human.stdout);
    assert!(
        human.stdout.contains("DHKEM(X25519, HKDF-SHA256) (0x0020)"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("HKDF-SHA256 + AES-128-GCM"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("HKDF-SHA256 + ChaCha20-Poly1305"),
        "{}",
        human.stdout
    );
    // Absolute UTC time and a relative one with units.
    let expiry = human
        .stdout
        .lines()
        .find(|l| l.starts_with("key expiry"))
        .unwrap_or_else(|| panic!("no key expiry line: {}", human.stdout));
    assert!(expiry.contains(" UTC (in "), "{expiry}");
    let secs = doc["expires_in_secs"].as_i64().expect("expires_in_secs");
    assert!(secs > 0, "{doc}");
    assert_eq!(
        doc["response"]["hpke_key_config"]["expire_timestamp"], doc["expire_timestamp"],
        "{doc}"
    );
    doc
}

// ---------------------------------------------------------------------------------------------
// No attestation

#[test]
fn dump_and_decode_without_attestation_against_our_egress() {
    let backend = Backend::start();
    let (egress, port) = launch_egress(backend.addr(), json!({}));
    let served = egress.egress_public_keys(0);
    let doc = assert_dump(&endpoint(port), Some(&served[0]), &[]);
    assert!(doc["attestation"].is_null(), "{doc}");
    // Rotation interval 300 s (the default): the key is accepted for twice that.
    let secs = doc["expires_in_secs"].as_i64().unwrap();
    assert!((590..=600).contains(&secs), "{doc}");

    let dir = test_dir("dump-out");
    let out = dir.join("bundle");
    let human = tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &endpoint(port),
        "--out-dir",
        out.to_str().unwrap(),
    ])
    .success();
    assert_eq!(files(&out), BUNDLE);
    assert!(human.stdout.contains("wrote"), "{}", human.stdout);
    let base64 = std::fs::read_to_string(out.join("hpke.base64")).unwrap();
    assert_eq!(public_key_of(&base64), served[0]);
    let hpke = read_json(&out.join("hpke.json"));
    assert_eq!(hpke["configs"][0]["public_key"], served[0]);
    assert_eq!(hpke["configs"][0]["kem"], "X25519Sha256");
    let raw = read_json(&out.join("raw.json"));
    assert_eq!(raw["hpke_key_config"]["encoded_key_config_list"], base64);
    assert!(raw["attestation_info"].is_null());

    // --raw alone writes only the response.
    let raw_file = dir.join("only-raw.json");
    tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &endpoint(port),
        "--raw",
        raw_file.to_str().unwrap(),
    ])
    .success();
    assert_eq!(read_json(&raw_file), raw);

    // decode reproduces dump's derived files offline (the egress is gone).
    drop(egress);
    let decoded = dir.join("decoded");
    tool(&[
        "tools",
        "ohttp",
        "decode",
        "--raw",
        out.join("raw.json").to_str().unwrap(),
        "--out-dir",
        decoded.to_str().unwrap(),
    ])
    .success();
    assert_eq!(files(&decoded), BUNDLE);
    for name in BUNDLE {
        assert_eq!(
            std::fs::read(decoded.join(name)).unwrap(),
            std::fs::read(out.join(name)).unwrap(),
            "{name}"
        );
    }

    // verify refuses a bundle without attestation, saying so.
    let verify = tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        raw_file.to_str().unwrap(),
        "--verify",
        r#"{"as_addr": "http://127.0.0.1:1/", "policy_ids": ["default"], "skip_as_token_cert_verify": true}"#,
    ]);
    verify.failure_with(&["verification failed", "attestation_info is null"]);
}

#[test]
fn dump_without_attestation_against_upstream_2_12_0_matches_upstreams_tool() {
    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    let backend = Backend::start();
    let port = free_port();
    let _egress = launch_upstream(
        &upstream,
        "upstream-2.12.0-egress",
        &json!({"add_egress": [egress_entry(port, backend.port(), None)]}),
        port,
    );
    let doc = assert_dump(&endpoint(port), None, &[]);
    assert!(doc["attestation"].is_null(), "{doc}");
    let ours = test_dir("ours-bundle");
    let theirs = test_dir("upstream-bundle");
    tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &endpoint(port),
        "--out-dir",
        ours.to_str().unwrap(),
    ])
    .success();
    run::upstream_tool(
        &upstream,
        &[
            "tools",
            "ohttp",
            "dump",
            "--endpoint",
            &endpoint(port),
            "--out-dir",
            theirs.to_str().unwrap(),
        ],
    )
    .success();
    assert_eq!(files(&ours), BUNDLE);
    assert_eq!(files(&theirs), BUNDLE, "upstream's bundle names");
    for name in ["hpke.json", "raw.json"] {
        assert_eq!(
            read_json(&ours.join(name)),
            read_json(&theirs.join(name)),
            "{name}"
        );
    }
    assert_eq!(
        std::fs::read(ours.join("hpke.base64")).unwrap(),
        std::fs::read(theirs.join("hpke.base64")).unwrap()
    );
    // Our decode of upstream's bundle gives upstream's derived files.
    let decoded = test_dir("decoded-upstream");
    tool(&[
        "tools",
        "ohttp",
        "decode",
        "--raw",
        theirs.join("raw.json").to_str().unwrap(),
        "--out-dir",
        decoded.to_str().unwrap(),
    ])
    .success();
    assert_eq!(
        read_json(&decoded.join("hpke.json")),
        read_json(&theirs.join("hpke.json"))
    );
}

// ---------------------------------------------------------------------------------------------
// Attested: background check and passport, our egress and upstream's

struct Attested {
    _aa: Aa,
    service: As,
    _backend: Backend,
    port: u16,
    _egress: Box<dyn std::any::Any>,
}

fn attested_egress(upstream: Option<&Path>, passport: bool) -> Attested {
    let aa = Aa::start(&[]);
    let service = As::start(&[], &[]);
    let backend = Backend::start();
    let port = free_port();
    let attest = if passport {
        attest_passport(&aa, &service)
    } else {
        attest_bg(&aa)
    };
    let config = json!({"add_egress": [egress_entry(port, backend.port(), Some(attest))]});
    let egress: Box<dyn std::any::Any> = match upstream {
        Some(bin) => Box::new(launch_upstream(
            bin,
            "upstream-2.12.0-egress",
            &config,
            port,
        )),
        None => Box::new(Tng::launch_named("egress", config)),
    };
    Attested {
        _aa: aa,
        service,
        _backend: backend,
        port,
        _egress: egress,
    }
}

/// Written out in full: upstream's tools require every field of its flat `VerifyArgs`.
fn verify_json(service: &As, passport: bool) -> String {
    let model = if passport {
        "passport"
    } else {
        "background_check"
    };
    json!({"model": model, "as_provider": "coco", "as_type": "restful", "as_addr": service.url(),
           "policy_ids": ["default"], "trusted_certs_paths": null,
           "verify_signer_transparency": false, "skip_as_token_cert_verify": false})
    .to_string()
}

/// dump --verify, --out-dir, verify of the bundle, and the tampering cases.
fn attested_round(upstream: Option<&Path>, passport: bool) {
    let setup = attested_egress(upstream, passport);
    let verify = verify_json(&setup.service, passport);
    let url = endpoint(setup.port);
    let doc = assert_dump(&url, None, &["--verify", &verify]);
    let att = &doc["attestation"];
    assert_eq!(att["verified"], true, "{doc}");
    assert_eq!(
        att["model"],
        if passport {
            "passport"
        } else {
            "background_check"
        },
        "{doc}"
    );
    assert_eq!(att["policy_ids"], json!(["default"]), "{doc}");
    assert_eq!(att["status"]["cpu0"], "affirming", "{doc}");
    assert!(att["token_expires_in_secs"].as_i64().unwrap() > 0, "{doc}");
    let human = tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &url,
        "--verify",
        &verify,
    ])
    .success();
    for needle in [
        "attestation      verified",
        "policy ids     default",
        "token expiry",
        "cpu0: affirming",
    ] {
        assert!(
            human.stdout.contains(needle),
            "{needle:?} in:\n{}",
            human.stdout
        );
    }

    let dir = test_dir("attested-bundle");
    let out = dir.join("ours");
    tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &url,
        "--verify",
        &verify,
        "--out-dir",
        out.to_str().unwrap(),
    ])
    .success();
    let expected: Vec<&str> = ATTESTED_BUNDLE.to_vec();
    assert_eq!(files(&out), expected);
    let claims = read_json(&out.join("attestation_result.claims.json"));
    let runtime =
        &claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["runtime_data_claims"];
    let raw = read_json(&out.join("raw.json"));
    assert_eq!(
        runtime["hpke_key_config"], raw["hpke_key_config"],
        "{claims}"
    );

    // The bundle verifies offline (the AS converts again in the background-check model).
    let raw_path = out.join("raw.json");
    let ok = tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        raw_path.to_str().unwrap(),
        "--verify",
        &verify,
    ])
    .success();
    assert!(
        ok.stdout.contains("attestation      verified"),
        "{}",
        ok.stdout
    );

    // Tampered key config: the attestation vouches for another key.
    let mut forged = raw.clone();
    let list = forged["hpke_key_config"]["encoded_key_config_list"]
        .as_str()
        .unwrap();
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(list)
        .unwrap();
    bytes[10] ^= 0x01;
    forged["hpke_key_config"]["encoded_key_config_list"] =
        base64::engine::general_purpose::STANDARD
            .encode(&bytes)
            .into();
    let forged_path = dir.join("forged-key.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        forged_path.to_str().unwrap(),
        "--verify",
        &verify,
    ])
    .failure_with(&["forged-key.json: verification failed", "hpke_key_config"]);

    if passport {
        // A token whose signature no longer matches.
        let mut forged = raw.clone();
        let token = forged["attestation_info"]["attestation_result"]
            .as_str()
            .unwrap()
            .to_owned();
        let (head, sig) = token.rsplit_once('.').unwrap();
        // Another first character changes the signature's first bytes.
        let flipped = match sig.strip_prefix('A') {
            Some(rest) => format!("B{rest}"),
            None => format!("A{}", &sig[1..]),
        };
        forged["attestation_info"]["attestation_result"] = format!("{head}.{flipped}").into();
        let path = dir.join("forged-token.json");
        std::fs::write(&path, forged.to_string()).unwrap();
        tool(&[
            "tools",
            "ohttp",
            "verify",
            "--raw",
            path.to_str().unwrap(),
            "--verify",
            &verify,
        ])
        .failure_with(&["forged-token.json: verification failed", "signature"]);
    } else {
        // Evidence bound to other runtime data than it claims.
        let mut forged = raw.clone();
        let rd = forged["attestation_info"]["evidence"]["aa_runtime_data"]
            .as_str()
            .unwrap()
            .to_owned();
        forged["attestation_info"]["evidence"]["aa_runtime_data"] = rd
            .replacen("\"expire_timestamp\":", "\"expire_timestamp\":1", 1)
            .into();
        let path = dir.join("forged-evidence.json");
        std::fs::write(&path, forged.to_string()).unwrap();
        tool(&[
            "tools",
            "ohttp",
            "verify",
            "--raw",
            path.to_str().unwrap(),
            "--verify",
            &verify,
        ])
        .failure_with(&["forged-evidence.json: verification failed"]);
        // A model mismatch is named as such.
        let passport_verify =
            json!({"model": "passport", "as_addr": setup.service.url(), "policy_ids": ["default"]})
                .to_string();
        tool(&[
            "tools",
            "ohttp",
            "verify",
            "--raw",
            raw_path.to_str().unwrap(),
            "--verify",
            &passport_verify,
        ])
        .failure_with(&["verification failed", "model mismatch"]);
    }
    // A policy the token does not name.
    let other_policy = json!({"model": if passport { "passport" } else { "background_check" },
        "as_addr": setup.service.url(), "policy_ids": ["other"]})
    .to_string();
    let refused = tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        raw_path.to_str().unwrap(),
        "--verify",
        &other_policy,
    ]);
    refused.failure_with(&["verification failed"]);

    // decode offline: the derived files, the claims decoded from the token file.
    let decoded = dir.join("decoded");
    tool(&[
        "tools",
        "ohttp",
        "decode",
        "--raw",
        raw_path.to_str().unwrap(),
        "--attestation-result",
        out.join("attestation_result.jwt").to_str().unwrap(),
        "--out-dir",
        decoded.to_str().unwrap(),
    ])
    .success();
    assert_eq!(files(&decoded), expected);
    for name in &expected {
        assert_eq!(
            std::fs::read(decoded.join(name)).unwrap(),
            std::fs::read(out.join(name)).unwrap(),
            "{name}"
        );
    }

    // Upstream's tool: its bundle of the same egress verifies with ours, with its file names.
    if let Some(upstream_bin) = stack::upstream_bin("2.12.0") {
        let theirs = dir.join("theirs");
        run::upstream_tool(
            &upstream_bin,
            &[
                "tools",
                "ohttp",
                "dump",
                "--endpoint",
                &url,
                "--verify",
                &verify,
                "--out-dir",
                theirs.to_str().unwrap(),
            ],
        )
        .success();
        assert_eq!(
            files(&theirs),
            expected,
            "upstream's bundle of the same egress"
        );
        let their_claims = read_json(&theirs.join("attestation_result.claims.json"));
        assert_eq!(their_claims["submods"]["cpu0"]["ear.status"], "affirming");
        tool(&[
            "tools",
            "ohttp",
            "verify",
            "--raw",
            theirs.join("raw.json").to_str().unwrap(),
            "--verify",
            &verify,
        ])
        .success();
        // And upstream's verify accepts our bundle.
        run::upstream_tool(
            &upstream_bin,
            &[
                "tools",
                "ohttp",
                "verify",
                "--raw",
                raw_path.to_str().unwrap(),
                "--verify",
                &verify,
            ],
        )
        .success();
    }
}

#[test]
fn attested_background_check_against_our_egress() {
    attested_round(None, false);
}

#[test]
fn attested_passport_against_our_egress() {
    attested_round(None, true);
}

#[test]
fn attested_background_check_against_upstream_2_12_0() {
    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    attested_round(Some(&upstream), false);
}

#[test]
fn attested_passport_against_upstream_2_12_0() {
    let Some(upstream) = upstream_bin("2.12.0") else {
        return;
    };
    attested_round(Some(&upstream), true);
}

#[test]
fn dump_fails_closed_when_the_attestation_does_not_verify() {
    let setup = attested_egress(None, false);
    let verify = json!({"as_addr": setup.service.url(), "policy_ids": ["nonexistent"]}).to_string();
    let dir = test_dir("failed-dump");
    let out = dir.join("bundle");
    tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &endpoint(setup.port),
        "--verify",
        &verify,
        "--out-dir",
        out.to_str().unwrap(),
    ])
    .failure_with(&["server attestation failed", "nonexistent"]);
    assert!(
        files(&out).is_empty(),
        "nothing written for an unverified key"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad flags and files

#[test]
fn bad_flags_and_files_are_named() {
    let dir = test_dir("bad-flags");
    let raw = dir.join("raw.json");
    let out = dir.join("out");
    let (r, o) = (raw.to_str().unwrap(), out.to_str().unwrap());
    // clap: exit status 2, both flags named.
    let both = tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        "http://127.0.0.1:1/",
        "--raw",
        r,
        "--out-dir",
        o,
    ]);
    assert_eq!(both.code, Some(2), "{both:?}");
    assert!(
        both.stderr.contains("--raw <FILE>") && both.stderr.contains("--out-dir <DIR>"),
        "{}",
        both.stderr
    );
    tool(&["tools", "ohttp", "dump", "--endpoint", "ftp://127.0.0.1/"])
        .failure_with(&["--endpoint ftp://127.0.0.1/: must be an http:// or https:// URL"]);
    tool(&[
        "tools",
        "ohttp",
        "dump",
        "--endpoint",
        &endpoint(free_port()),
    ])
    .failure_with(&["cannot get the OHTTP key config from http://127.0.0.1:"]);
    tool(&["tools", "ohttp", "decode", "--raw", r, "--out-dir", o])
        .failure_with(&[&format!("--raw {r}: cannot read the file")]);
    std::fs::write(&raw, "{not json").unwrap();
    tool(&["tools", "ohttp", "decode", "--raw", r, "--out-dir", o])
        .failure_with(&[&format!("--raw {r}: not JSON")]);
    std::fs::write(&raw, r#"{"hello": 1}"#).unwrap();
    tool(&["tools", "ohttp", "decode", "--raw", r, "--out-dir", o])
        .failure_with(&[&format!("--raw {r}: not a key-config response")]);
    std::fs::write(&raw, r#"{"hpke_key_config": {"expire_timestamp": 1, "encoded_key_config_list": "AC0A"}, "attestation_info": null}"#).unwrap();
    tool(&["tools", "ohttp", "decode", "--raw", r, "--out-dir", o])
        .failure_with(&["hpke_key_config.encoded_key_config_list", "truncated"]);
    tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        r,
        "--verify",
        "{\"as_addr\": \"http://127.0.0.1:1/\", \"policy_ids\": 3}",
    ])
    .failure_with(&["--verify.policy_ids: invalid type"]);
    tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        r,
        "--verify",
        "{\"as_addr\": \"http://127.0.0.1:1/\"}",
    ])
    .failure_with(&["--verify.policy_ids"]);
    tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        r,
        "--verify",
        "/nonexistent/verify.json",
    ])
    .failure_with(&["--verify: neither a JSON object nor a readable file"]);
    tool(&[
        "tools",
        "ohttp",
        "verify",
        "--raw",
        r,
        "--verify",
        "{\"as_addr\": \"http://127.0.0.1:1/\", \"policy_ids\": [], \"bogus\": 1}",
    ])
    .failure_with(&["--verify: unknown field `bogus`"]);
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    std::fs::write(&raw, r#"{"hpke_key_config": {"expire_timestamp": 1, "encoded_key_config_list": ""}, "attestation_info": null}"#).unwrap();
    tool(&[
        "tools",
        "ohttp",
        "decode",
        "--raw",
        r,
        "--out-dir",
        file.to_str().unwrap(),
    ])
    .failure_with(&["--out-dir", "a-file"]);
    // key-sync
    let ks = |extra: &[&str]| {
        let mut args = vec![
            "tools",
            "key-sync",
            "--attest",
            r#"{"aa_addr": "unix:///nonexistent/aa.sock"}"#,
            "--verify",
            r#"{"as_addr": "http://127.0.0.1:1/", "policy_ids": ["default"]}"#,
            "--out-dir",
            o,
        ];
        args.extend_from_slice(extra);
        tool(&args)
    };
    ks(&["--peer", "127.0.0.1:1", "--rotation-interval", "0"])
        .failure_with(&["--rotation-interval: must be > 0"]);
    ks(&[]).failure_with(&["--peer", "--peers-file"]);
    ks(&["--peer", "127.0.0.1:1"]).failure_with(&[
        "--attest.aa_addr: Attestation Agent socket file /nonexistent/aa.sock not found",
    ]);
    let missing = tool(&["tools", "key-sync", "--out-dir", o]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("--attest <JSON>") && missing.stderr.contains("--verify <JSON>"),
        "{}",
        missing.stderr
    );
}
