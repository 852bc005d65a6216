//! Runtime-data claims (what the evidence binds), their RFC 8785 canonical form and SHA-384
//! digest (the Attestation Agent's `RuntimeData`), and the CoCo evidence wrapper sent to peers.

pub mod canonical;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha384};

/// A runtime-data claims object, e.g. `{"challenge_token": .., "hpke_key_config": {..}}`.
pub type Claims = Map<String, Value>;

/// The only hash algorithm TNG writes into `aa_runtime_data_hash_algo`.
pub const HASH_ALGO_SHA384: &str = "sha384";

/// Length of the SHA-384 digest handed to the AA as `RuntimeData`.
pub const RUNTIME_DATA_LEN: usize = 48;

/// Standard-alphabet base64 that accepts input with or without padding.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The canonical JSON text of `claims` (this exact string travels as `aa_runtime_data`).
pub fn canonical_claims(claims: &Claims) -> String {
    canonical::object_to_canonical_string(claims)
}

/// SHA-384 of the canonical text: the 48 bytes the AA puts into the TEE report data.
pub fn runtime_data_digest(canonical_text: &str) -> [u8; RUNTIME_DATA_LEN] {
    Sha384::digest(canonical_text.as_bytes()).into()
}

/// The claims of an OHTTP server (`ServerUserData`): `challenge_token` is omitted entirely when
/// absent; `hpke_key_config` is the object returned in the key-config response.
pub fn server_claims(challenge_token: Option<&str>, hpke_key_config: Value) -> Claims {
    let mut claims = Claims::new();
    if let Some(token) = challenge_token {
        claims.insert("challenge_token".into(), Value::String(token.to_owned()));
    }
    claims.insert("hpke_key_config".into(), hpke_key_config);
    claims
}

/// The claims of an OHTTP client (`ClientUserData`): `pk_s` is the standard-base64 X25519
/// public key.
pub fn client_claims(challenge_token: Option<&str>, pk_s: &str) -> Claims {
    let mut claims = Claims::new();
    if let Some(token) = challenge_token {
        claims.insert("challenge_token".into(), Value::String(token.to_owned()));
    }
    claims.insert("pk_s".into(), Value::String(pk_s.to_owned()));
    claims
}

/// A malformed CoCo evidence wrapper (as received from a peer).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceFormatError {
    #[error("evidence field {field} is not valid base64")]
    Base64 { field: &'static str },
    #[error("evidence field aa_runtime_data is not a JSON object: {0}")]
    RuntimeData(String),
    #[error("evidence field aa_runtime_data_hash_algo {0:?} is not supported")]
    HashAlgo(String),
    #[error("additional evidence is not a JSON object of device evidence")]
    AdditionalEvidence,
}

/// TNG's wrapper around Attestation Agent evidence (`CocoEvidence` JSON). Base64 fields are
/// kept as their wire strings; use the accessors for the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoEvidence {
    /// The `GetTeeType` result (kbs-types name, e.g. `sample`, `tdx`).
    pub aa_tee_type: String,
    /// Standard base64 (padded) of the AA `Evidence` bytes.
    pub aa_evidence: String,
    /// Standard base64 of the `GetAdditionalEvidence` bytes; omitted when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aa_additional_evidence: Option<String>,
    /// The canonical JSON text of the runtime-data claims.
    pub aa_runtime_data: String,
    /// `sha256` / `sha384` / `sha512` (TNG writes `sha384`).
    pub aa_runtime_data_hash_algo: String,
}

impl CocoEvidence {
    /// Wraps AA output for claims whose canonical text is `canonical_runtime_data`.
    pub fn new(
        tee: &str,
        evidence: &[u8],
        additional_evidence: Option<&[u8]>,
        canonical_runtime_data: String,
    ) -> Self {
        Self {
            aa_tee_type: tee.to_owned(),
            aa_evidence: STANDARD.encode(evidence),
            aa_additional_evidence: additional_evidence.map(|bytes| STANDARD.encode(bytes)),
            aa_runtime_data: canonical_runtime_data,
            aa_runtime_data_hash_algo: HASH_ALGO_SHA384.to_owned(),
        }
    }

    /// The AA `Evidence` bytes.
    pub fn evidence_bytes(&self) -> Result<Vec<u8>, EvidenceFormatError> {
        STANDARD_LENIENT
            .decode(self.aa_evidence.trim())
            .map_err(|_| EvidenceFormatError::Base64 {
                field: "aa_evidence",
            })
    }

    /// The `GetAdditionalEvidence` bytes, if any (empty counts as none).
    pub fn additional_evidence_bytes(&self) -> Result<Option<Vec<u8>>, EvidenceFormatError> {
        let Some(text) = &self.aa_additional_evidence else {
            return Ok(None);
        };
        let bytes =
            STANDARD_LENIENT
                .decode(text.trim())
                .map_err(|_| EvidenceFormatError::Base64 {
                    field: "aa_additional_evidence",
                })?;
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    /// Additional evidence split per device: `[(tee name, evidence JSON text)]`.
    pub fn additional_devices(&self) -> Result<Vec<(String, String)>, EvidenceFormatError> {
        let Some(bytes) = self.additional_evidence_bytes()? else {
            return Ok(Vec::new());
        };
        let map: Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|_| EvidenceFormatError::AdditionalEvidence)?;
        Ok(map
            .into_iter()
            .map(|(tee, evidence)| (tee, evidence.to_string()))
            .collect())
    }

    /// The structured runtime-data claims (`aa_runtime_data` parsed).
    pub fn runtime_data_claims(&self) -> Result<Claims, EvidenceFormatError> {
        serde_json::from_str(&self.aa_runtime_data)
            .map_err(|e| EvidenceFormatError::RuntimeData(e.to_string()))
    }

    /// The hash algorithm name, checked to be one the Attestation Service knows.
    pub fn hash_algo(&self) -> Result<&str, EvidenceFormatError> {
        match self.aa_runtime_data_hash_algo.as_str() {
            algo @ ("sha256" | "sha384" | "sha512") => Ok(algo),
            other => Err(EvidenceFormatError::HashAlgo(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_claims() -> Claims {
        server_claims(
            Some("eyJhbGciOiJSUzM4NCJ9.e30.c2ln"),
            json!({
                "expire_timestamp": 3688063588u64,
                "encoded_key_config_list": "AC0AACCfX/KrJJGR5JZK02t8Hy+dagimzJFRxh85w8dEAND+dwAIAAEAAwABAAE="
            }),
        )
    }

    /// The §A2 claims shape: keys sorted recursively, no whitespace, `/` and `+` verbatim.
    #[test]
    fn server_claims_canonical_text() {
        assert_eq!(
            canonical_claims(&sample_claims()),
            "{\"challenge_token\":\"eyJhbGciOiJSUzM4NCJ9.e30.c2ln\",\"hpke_key_config\":\
             {\"encoded_key_config_list\":\"AC0AACCfX/KrJJGR5JZK02t8Hy+dagimzJFRxh85w8dEAND+dwAIAAEAAwABAAE=\",\
             \"expire_timestamp\":3688063588}}"
        );
        let no_challenge = server_claims(
            None,
            json!({"expire_timestamp": 1, "encoded_key_config_list": ""}),
        );
        assert_eq!(
            canonical_claims(&no_challenge),
            "{\"hpke_key_config\":{\"encoded_key_config_list\":\"\",\"expire_timestamp\":1}}"
        );
        let client = client_claims(None, "pk+/=");
        assert_eq!(canonical_claims(&client), "{\"pk_s\":\"pk+/=\"}");
    }

    /// FIPS 180-2 SHA-384 "abc" vector, and the empty string.
    #[test]
    fn sha384_known_answers() {
        assert_eq!(
            hex_of(&runtime_data_digest("abc")),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            hex_of(&runtime_data_digest("")),
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da\
             274edebfe76f65fbd51ad2f14898b95b"
        );
        assert_eq!(runtime_data_digest("{}").len(), RUNTIME_DATA_LEN);
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn evidence_wrapper_json_shape() {
        let canonical = canonical_claims(&sample_claims());
        let evidence = CocoEvidence::new("sample", b"{\"svn\":\"1\"}", None, canonical.clone());
        let json = serde_json::to_value(&evidence).expect("serialises");
        assert_eq!(
            json,
            json!({
                "aa_tee_type": "sample",
                "aa_evidence": "eyJzdm4iOiIxIn0=",
                "aa_runtime_data": canonical,
                "aa_runtime_data_hash_algo": "sha384"
            })
        );
        assert_eq!(evidence.evidence_bytes().expect("b64"), b"{\"svn\":\"1\"}");
        assert_eq!(
            evidence.runtime_data_claims().expect("claims"),
            sample_claims()
        );
        assert_eq!(evidence.additional_devices().expect("none"), vec![]);

        let with_extra = CocoEvidence::new(
            "tdx",
            b"x",
            Some(br#"{"sampledevice":{"svn":"2"}}"#),
            "{}".into(),
        );
        let json = serde_json::to_value(&with_extra).expect("serialises");
        assert_eq!(
            json["aa_additional_evidence"],
            "eyJzYW1wbGVkZXZpY2UiOnsic3ZuIjoiMiJ9fQ=="
        );
        assert_eq!(
            with_extra.additional_devices().expect("devices"),
            vec![("sampledevice".to_owned(), "{\"svn\":\"2\"}".to_owned())]
        );
    }

    #[test]
    fn malformed_evidence_is_reported() {
        let bad: CocoEvidence = serde_json::from_value(json!({
            "aa_tee_type": "sample", "aa_evidence": "!!", "aa_runtime_data": "[1]",
            "aa_runtime_data_hash_algo": "md5"
        }))
        .expect("shape is fine");
        assert_eq!(
            bad.evidence_bytes(),
            Err(EvidenceFormatError::Base64 {
                field: "aa_evidence"
            })
        );
        assert!(matches!(
            bad.runtime_data_claims(),
            Err(EvidenceFormatError::RuntimeData(_))
        ));
        assert_eq!(
            bad.hash_algo(),
            Err(EvidenceFormatError::HashAlgo("md5".into()))
        );
    }
}
