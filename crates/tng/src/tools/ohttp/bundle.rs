//! The bundle: one key-config response and what derives from it, as files
//! (`raw.json`, `hpke.base64`, `hpke.json`, and with an attestation `quote.bin`,
//! `eventlog.json`, `attestation_result.jwt`, `attestation_result.claims.json`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tng_ohttp::api::{AttestationInfo, KeyConfigResponse};
use tng_ohttp::keys::{kem_label, list_key_configs, suite_label, KeyConfigError, ListedKeyConfig};

use crate::tools::fs::write_atomic;

/// Every file a bundle may hold; files of an earlier run that this one does not produce are
/// removed, so a directory never mixes two dumps.
pub const BUNDLE_FILES: [&str; 7] = [
    "raw.json",
    "hpke.base64",
    "hpke.json",
    "quote.bin",
    "eventlog.json",
    "attestation_result.jwt",
    "attestation_result.claims.json",
];

pub struct Bundle {
    /// The response as received (unknown fields kept).
    pub document: Value,
    pub response: KeyConfigResponse,
    pub listed: Vec<ListedKeyConfig>,
    pub attestation: Option<Attestation>,
}

/// What the bundle says about the egress's attestation.
pub struct Attestation {
    /// `passport` or `background_check`.
    pub model: &'static str,
    /// `as_provider` / `aa_provider` (absent means `coco`).
    pub provider: String,
    /// The token passed every check (signature, policy ids, expiry, key binding).
    pub verified: bool,
    /// The attestation-result token (compact JWS), when there is one.
    pub token: Option<String>,
    pub claims: Option<Map<String, Value>>,
    pub policy_ids: Vec<String>,
    pub exp: Option<u64>,
    /// Background check: the evidence the egress sent.
    pub evidence: Option<Value>,
}

impl Attestation {
    pub fn verified(token: tng_attest::VerifiedToken, info: &AttestationInfo) -> Attestation {
        let (model, provider, evidence) = describe(info);
        Attestation {
            model,
            provider,
            verified: true,
            policy_ids: token.policy_ids.iter().cloned().collect(),
            exp: Some(token.exp),
            claims: Some(token.claims),
            token: Some(token.token),
            evidence,
        }
    }

    /// A token read without verification (`decode`).
    pub fn unverified(
        token: String,
        info: Option<&AttestationInfo>,
    ) -> anyhow::Result<Attestation> {
        let claims = crate::tools::jwt_payload(&token)?;
        let (model, provider, evidence) = match info {
            Some(info) => describe(info),
            None => ("unknown", "coco".to_owned(), None),
        };
        let profile = tng_attest::verify::appraisal::profile(&claims).ok();
        let policy_ids = profile
            .and_then(|p| tng_attest::verify::appraisal::policy_ids(&claims, p).ok())
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default();
        Ok(Attestation {
            model,
            provider,
            verified: false,
            exp: claims.get("exp").and_then(Value::as_u64),
            policy_ids,
            claims: Some(claims),
            token: Some(token),
            evidence,
        })
    }

    /// Background-check evidence without a token (`decode` without `--attestation-result`).
    pub fn evidence_only(info: &AttestationInfo) -> Attestation {
        let (model, provider, evidence) = describe(info);
        let token = match info {
            AttestationInfo::Passport {
                attestation_result, ..
            } => Some(attestation_result.clone()),
            AttestationInfo::BackgroundCheck { .. } => None,
        };
        Attestation {
            model,
            provider,
            verified: false,
            token,
            claims: None,
            policy_ids: Vec::new(),
            exp: None,
            evidence,
        }
    }

    /// The TEE quote: the `quote` of the AA evidence (TDX-style evidence JSON). A TEE whose
    /// evidence has none (the sample TEE) gives no `quote.bin`, as upstream.
    pub fn quote(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(evidence) = self.aa_evidence()? else {
            return Ok(None);
        };
        match evidence.get("quote").and_then(Value::as_str) {
            Some(quote) => Ok(Some(
                base64::engine::general_purpose::STANDARD
                    .decode(quote.trim())
                    .or_else(|_| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(quote.trim())
                    })
                    .context("attestation_info.evidence.aa_evidence: quote is not base64")?,
            )),
            None => Ok(None),
        }
    }

    /// The AA evidence (base64 `aa_evidence`) as JSON, when it is JSON.
    fn aa_evidence(&self) -> anyhow::Result<Option<Value>> {
        let Some(evidence) = &self.evidence else {
            return Ok(None);
        };
        let evidence: tng_attest::CocoEvidence = serde_json::from_value(evidence.clone())
            .context("attestation_info.evidence is not CoCo evidence")?;
        let bytes = evidence
            .evidence_bytes()
            .context("attestation_info.evidence.aa_evidence")?;
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// The event log: the TEE's (`cc_eventlog`) from the evidence, else what the token's
    /// annotated evidence carries; none when neither has one (the sample TEE), as upstream.
    pub fn eventlog(&self) -> Option<Value> {
        let present = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
        if let Ok(Some(evidence)) = self.aa_evidence() {
            if let Some(log) = present(evidence.get("cc_eventlog")) {
                return Some(log);
            }
        }
        let claims = self.claims.as_ref()?;
        let submods = claims.get("submods").and_then(Value::as_object)?;
        let mut logs = Map::new();
        for (name, submod) in submods {
            let annotated = submod.get("ear.veraison.annotated-evidence");
            let log = annotated
                .and_then(|a| present(a.get("cc_eventlog")).or_else(|| present(a.get("eventlog"))));
            if let Some(log) = log {
                logs.insert(name.clone(), log);
            }
        }
        (!logs.is_empty()).then_some(Value::Object(logs))
    }
}

fn describe(info: &AttestationInfo) -> (&'static str, String, Option<Value>) {
    match info {
        AttestationInfo::Passport { as_provider, .. } => (
            "passport",
            as_provider.clone().unwrap_or_else(|| "coco".into()),
            None,
        ),
        AttestationInfo::BackgroundCheck {
            evidence,
            aa_provider,
        } => (
            "background_check",
            aa_provider.clone().unwrap_or_else(|| "coco".into()),
            Some(evidence.clone()),
        ),
    }
}

/// The challenge token the egress bound into its background-check evidence: offline, it is
/// what the Attestation Service's token must echo next to the key config.
pub fn evidence_challenge(evidence: &Value) -> Result<String, String> {
    let evidence: tng_attest::CocoEvidence = serde_json::from_value(evidence.clone())
        .map_err(|e| format!("attestation_info.evidence is not CoCo evidence: {e}"))?;
    let claims = evidence
        .runtime_data_claims()
        .map_err(|e| format!("attestation_info.evidence.aa_runtime_data: {e}"))?;
    claims
        .get("challenge_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            "attestation_info.evidence.aa_runtime_data has no challenge_token".to_owned()
        })
}

/// The key configs of a response, every entry and suite as sent.
pub fn listing(response: &KeyConfigResponse) -> Result<Vec<ListedKeyConfig>, KeyConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response.hpke_key_config.encoded_key_config_list.as_bytes())
        .map_err(|e| {
            KeyConfigError::Base64(format!("hpke_key_config.encoded_key_config_list: {e}"))
        })?;
    list_key_configs(&bytes)
}

impl Bundle {
    pub fn new(
        document: Value,
        response: KeyConfigResponse,
        attestation: Option<Attestation>,
    ) -> anyhow::Result<Bundle> {
        let listed = listing(&response).context("hpke_key_config.encoded_key_config_list")?;
        Ok(Bundle {
            document,
            response,
            listed,
            attestation,
        })
    }

    /// `hpke.json`, in upstream's layout.
    pub fn hpke_json(&self) -> Value {
        let configs: Vec<Value> = self
            .listed
            .iter()
            .map(|c| {
                json!({
                    "key_id": c.key_id,
                    "kem": kem_label(c.kem_id),
                    "public_key": hex::encode(&c.public_key),
                    "symmetric_suites": c.suites.iter().map(|(k, a)| suite_label(*k, *a)).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "expire_timestamp": self.response.hpke_key_config.expire_timestamp,
            "configs": configs,
        })
    }

    pub fn write_raw(&self, path: &Path) -> anyhow::Result<()> {
        write_atomic(path, &pretty(&self.document), 0o644)
            .with_context(|| format!("--raw {}", path.display()))
    }

    /// Writes the bundle files into `dir`; returns the paths written.
    pub fn write_dir(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            ("raw.json", pretty(&self.document)),
            (
                "hpke.base64",
                self.response
                    .hpke_key_config
                    .encoded_key_config_list
                    .clone()
                    .into_bytes(),
            ),
            ("hpke.json", pretty(&self.hpke_json())),
        ];
        if let Some(attestation) = &self.attestation {
            if let Some(quote) = attestation.quote()? {
                files.push(("quote.bin", quote));
            }
            if let Some(eventlog) = attestation.eventlog() {
                files.push(("eventlog.json", pretty(&eventlog)));
            }
            if let Some(token) = &attestation.token {
                files.push(("attestation_result.jwt", token.clone().into_bytes()));
            }
            if let Some(claims) = &attestation.claims {
                files.push((
                    "attestation_result.claims.json",
                    pretty(&Value::Object(claims.clone())),
                ));
            }
        }
        let mut written = Vec::new();
        for (name, contents) in &files {
            let path = dir.join(name);
            write_atomic(&path, contents, 0o644)
                .with_context(|| format!("--out-dir {}", dir.display()))?;
            written.push(path);
        }
        for name in BUNDLE_FILES {
            if !files.iter().any(|(n, _)| *n == name) {
                match std::fs::remove_file(dir.join(name)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!(
                                "--out-dir {}: cannot remove the stale {name}",
                                dir.display()
                            )
                        })
                    }
                }
            }
        }
        Ok(written)
    }
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}
