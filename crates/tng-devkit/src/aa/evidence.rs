//! The `sample` TEE evidence, as the inclavare Attestation Agent produces it (spec §A4.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

/// The TEE name `GetTeeType` answers (kbs-types serde name, without quotes).
pub const TEE_TYPE: &str = "sample";

/// The security version the sample TEE claims; the AS's sample verifier requires it present.
const SVN: &str = "1";

/// Evidence JSON. Fields are declared in alphabetical order because the real AA serialises a
/// struct with serde_json and peers see the keys in that order.
#[derive(Serialize)]
struct SampleEvidence<'a> {
    cc_eventlog: Option<String>,
    measure_register: &'a str,
    report_data: String,
    svn: &'a str,
}

/// A validated 32-byte measurement register, kept as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasureRegister(String);

impl Default for MeasureRegister {
    /// The inclavare AA creates the register as 64 hex zeros when none exists.
    fn default() -> Self {
        Self("0".repeat(64))
    }
}

impl std::str::FromStr for MeasureRegister {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(text.trim()).map_err(|err| format!("not hex: {err}"))?;
        if bytes.len() != 32 {
            return Err(format!(
                "must be 32 bytes (64 hex digits), got {} bytes",
                bytes.len()
            ));
        }
        Ok(Self(hex::encode(bytes)))
    }
}

/// The bytes `GetEvidence` returns for `runtime_data` (carried verbatim as `report_data`).
pub fn sample_evidence(runtime_data: &[u8], register: &MeasureRegister) -> Vec<u8> {
    let evidence = SampleEvidence {
        cc_eventlog: None,
        measure_register: &register.0,
        report_data: STANDARD.encode(runtime_data),
        svn: SVN,
    };
    serde_json::to_vec(&evidence).expect("serialising a struct of strings cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_has_the_aa_shape_with_sorted_keys() {
        let text = String::from_utf8(sample_evidence(&[0xab; 48], &MeasureRegister::default()))
            .expect("utf-8");
        let expected = format!(
            "{{\"cc_eventlog\":null,\"measure_register\":\"{}\",\"report_data\":\"{}\",\"svn\":\"1\"}}",
            "0".repeat(64),
            STANDARD.encode([0xab; 48])
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn measure_register_must_be_32_bytes_of_hex() {
        assert!("00".parse::<MeasureRegister>().is_err());
        assert!("zz".repeat(32).parse::<MeasureRegister>().is_err());
        let parsed: MeasureRegister = "AB".repeat(32).parse().expect("valid");
        assert_eq!(parsed.0, "ab".repeat(32));
    }
}
