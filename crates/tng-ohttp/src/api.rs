//! Names and JSON bodies of the TNG OHTTP API (spec §2.3, §3, §5, §9.1). The egress
//! dispatches on the `x-tng-ohttp-api` header only; method and path are free.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::keys::{decode_key_config_list, encode_key_config_list, KeyConfig, KeyConfigError};

pub const API_HEADER: &str = "x-tng-ohttp-api";
pub const CONTENT_TYPE_CHUNKED_REQUEST: &str = "message/ohttp-chunked-req";
pub const CONTENT_TYPE_CHUNKED_RESPONSE: &str = "message/ohttp-chunked-res";
/// Our extension, inside the sealed request only: the application's address as the ingress
/// saw it. Never forwarded to the service; an ingress replaces whatever the application sent.
pub const CLIENT_IP_HEADER: &str = "x-tng-client-ip";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OhttpApi {
    KeyConfig,
    Tunnel,
    BackgroundCheckChallenge,
    BackgroundCheckVerify,
}

impl OhttpApi {
    pub const ALL: [OhttpApi; 4] = [
        OhttpApi::KeyConfig,
        OhttpApi::Tunnel,
        OhttpApi::BackgroundCheckChallenge,
        OhttpApi::BackgroundCheckVerify,
    ];

    /// Exact, case-sensitive match of the header value (as upstream compares it).
    pub fn parse(value: &[u8]) -> Option<OhttpApi> {
        OhttpApi::ALL
            .into_iter()
            .find(|api| api.as_str().as_bytes() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OhttpApi::KeyConfig => "/tng/key-config",
            OhttpApi::Tunnel => "/tng/tunnel",
            OhttpApi::BackgroundCheckChallenge => "/tng/background-check/challenge",
            OhttpApi::BackgroundCheckVerify => "/tng/background-check/verify",
        }
    }
}

/// Body of a key-config request. `{}` is accepted (no attestation wanted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyConfigRequest {
    #[serde(default)]
    pub attestation_request: Option<AttestationRequest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum AttestationRequest {
    Passport,
    BackgroundCheck { challenge_token: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyConfigResponse {
    pub hpke_key_config: HpkeKeyConfig,
    /// Always serialized; `null` when the egress does not attest or nobody asked.
    #[serde(default)]
    pub attestation_info: Option<AttestationInfo>,
}

/// The key config as advertised; serialized byte-for-byte into the attestation claims, so
/// field order and types matter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HpkeKeyConfig {
    /// Unix seconds after which the advertised key is no longer accepted.
    pub expire_timestamp: u64,
    /// Standard padded base64 of an `application/ohttp-keys` list.
    pub encoded_key_config_list: String,
}

impl HpkeKeyConfig {
    pub fn new(configs: &[KeyConfig], expire_timestamp: u64) -> HpkeKeyConfig {
        HpkeKeyConfig {
            expire_timestamp,
            encoded_key_config_list: base64::engine::general_purpose::STANDARD
                .encode(encode_key_config_list(configs)),
        }
    }

    pub fn decode(&self) -> Result<Vec<KeyConfig>, KeyConfigError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.encoded_key_config_list.as_bytes())
            .map_err(|e| KeyConfigError::Base64(e.to_string()))?;
        decode_key_config_list(&bytes)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum AttestationInfo {
    Passport {
        attestation_result: String,
        /// Absent from legacy (≤ 2.5) peers, meaning `coco`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_provider: Option<String>,
    },
    BackgroundCheck {
        evidence: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aa_provider: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub challenge_token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyRequest {
    pub evidence: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aa_provider: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    pub attestation_result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_provider: Option<String>,
}

/// `{"code": "<error variant>", "message": "<text>"}`, the error body of both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> String {
        // Two strings always serialize.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests;
