//! The payload of extension 2.23.133.5.4.9 (spec §2.3): the extension's OCTET STRING holds
//! CBOR directly, `tag(T) [ bstr evidence, bstr claims_buffer ]`, where `claims_buffer` is
//! always written empty and ignored on reading.
//!
//! - `T = 0xC0C000` (background check): `evidence` is a CBOR map `tee_type`, `aa_evidence`,
//!   `aa_additional_evidence` (bytes or null), `aa_runtime_data` (the canonical claims JSON),
//!   `aa_runtime_data_hash_algo` (IANA hash id; we write 7 = SHA-384);
//! - `T = 0xC0C001` (passport): `evidence` is the Attestation Service token (JWT text).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ciborium::value::{Integer, Value};
use tng_attest::{CocoEvidence, Model};

use crate::Error;

pub const TAG_COCO_EVIDENCE: u64 = 0xC0_C000;
pub const TAG_COCO_TOKEN: u64 = 0xC0_C001;
/// Intel Trust Authority evidence and token: recognised so the refusal names them.
pub const TAG_ITA_EVIDENCE: u64 = 0x17_A000;
pub const TAG_ITA_TOKEN: u64 = 0x17_A001;

/// IANA named-information hash ids of `aa_runtime_data_hash_algo`.
const HASH_IDS: [(u64, &str); 3] = [(1, "sha256"), (7, "sha384"), (8, "sha512")];

/// What an attested certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Background check: Attestation Agent evidence, appraised by the verifier's own
    /// Attestation Service.
    Coco(CocoEvidence),
    /// Passport: the token the attester's Attestation Service issued for its evidence.
    Token(String),
}

impl Evidence {
    pub fn model(&self) -> Model {
        match self {
            Evidence::Coco(_) => Model::BackgroundCheck,
            Evidence::Token(_) => Model::Passport,
        }
    }

    /// The extension content: `tag(T) [evidence, h'']`.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let (tag, payload) = match self {
            Evidence::Coco(evidence) => (TAG_COCO_EVIDENCE, encode_coco(evidence)?),
            Evidence::Token(token) => (TAG_COCO_TOKEN, token.as_bytes().to_vec()),
        };
        let value = Value::Tag(
            tag,
            Box::new(Value::Array(vec![
                Value::Bytes(payload),
                Value::Bytes(Vec::new()),
            ])),
        );
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out).map_err(|e| Error::Build(e.to_string()))?;
        Ok(out)
    }

    /// Parses the extension content.
    pub fn decode(content: &[u8]) -> Result<Self, Error> {
        let malformed = |what: &str| Error::MalformedEvidence(what.to_owned());
        let value: Value = ciborium::from_reader(content)
            .map_err(|e| Error::MalformedEvidence(format!("not CBOR: {e}")))?;
        let Value::Tag(tag, inner) = value else {
            return Err(malformed("the CBOR item is not tagged"));
        };
        let Value::Array(items) = *inner else {
            return Err(malformed("the tagged item is not an array"));
        };
        let payload = match items.into_iter().next() {
            Some(Value::Bytes(bytes)) => bytes,
            _ => return Err(malformed("the array does not start with a byte string")),
        };
        match tag {
            TAG_COCO_EVIDENCE => Ok(Evidence::Coco(decode_coco(&payload)?)),
            TAG_COCO_TOKEN => {
                let token = String::from_utf8(payload)
                    .map_err(|_| malformed("the token is not UTF-8 text"))?;
                Ok(Evidence::Token(token.trim().to_owned()))
            }
            other => Err(Error::UnsupportedTag(other)),
        }
    }
}

fn encode_coco(evidence: &CocoEvidence) -> Result<Vec<u8>, Error> {
    let hash_id = HASH_IDS
        .iter()
        .find(|(_, name)| *name == evidence.aa_runtime_data_hash_algo)
        .map(|(id, _)| *id)
        .ok_or_else(|| {
            Error::Build(format!(
                "hash algorithm {:?} has no IANA id",
                evidence.aa_runtime_data_hash_algo
            ))
        })?;
    let additional = match evidence
        .additional_evidence_bytes()
        .map_err(|e| Error::Build(e.to_string()))?
    {
        Some(bytes) => Value::Bytes(bytes),
        None => Value::Null,
    };
    // Upstream's key order (its parser does not depend on it).
    let map = Value::Map(vec![
        (text("tee_type"), text(&evidence.aa_tee_type)),
        (
            text("aa_evidence"),
            Value::Bytes(
                evidence
                    .evidence_bytes()
                    .map_err(|e| Error::Build(e.to_string()))?,
            ),
        ),
        (text("aa_additional_evidence"), additional),
        (text("aa_runtime_data"), text(&evidence.aa_runtime_data)),
        (
            text("aa_runtime_data_hash_algo"),
            Value::Integer(Integer::from(hash_id)),
        ),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).map_err(|e| Error::Build(e.to_string()))?;
    Ok(out)
}

fn decode_coco(payload: &[u8]) -> Result<CocoEvidence, Error> {
    let malformed = |what: String| Error::MalformedEvidence(what);
    let value: Value = ciborium::from_reader(payload)
        .map_err(|e| malformed(format!("the CoCo evidence is not CBOR: {e}")))?;
    let Value::Map(entries) = value else {
        return Err(malformed("the CoCo evidence is not a CBOR map".into()));
    };
    let (mut tee, mut evidence, mut additional, mut runtime_data, mut hash_id) =
        (None, None, None, None, None);
    for (key, value) in entries {
        let Value::Text(key) = key else { continue };
        let wrong = |field: &str, want: &str| malformed(format!("{field} is not {want}"));
        match key.as_str() {
            "tee_type" => match value {
                Value::Text(t) => tee = Some(t),
                _ => return Err(wrong("tee_type", "text")),
            },
            "aa_evidence" => match value {
                Value::Bytes(b) => evidence = Some(b),
                _ => return Err(wrong("aa_evidence", "a byte string")),
            },
            "aa_additional_evidence" => match value {
                Value::Bytes(b) => additional = Some(b),
                Value::Null => {}
                _ => return Err(wrong("aa_additional_evidence", "a byte string or null")),
            },
            "aa_runtime_data" => match value {
                Value::Text(t) => runtime_data = Some(t),
                _ => return Err(wrong("aa_runtime_data", "text")),
            },
            "aa_runtime_data_hash_algo" => match value {
                Value::Integer(i) => hash_id = u64::try_from(i).ok(),
                _ => return Err(wrong("aa_runtime_data_hash_algo", "an unsigned integer")),
            },
            // Keys of later formats are ignored, as upstream's parser does.
            _ => {}
        }
    }
    let missing = |field: &str| malformed(format!("the CoCo evidence has no {field}"));
    let hash_id = hash_id.ok_or_else(|| missing("aa_runtime_data_hash_algo"))?;
    let hash = HASH_IDS
        .iter()
        .find(|(id, _)| *id == hash_id)
        .map(|(_, name)| *name)
        .ok_or_else(|| {
            malformed(format!(
                "aa_runtime_data_hash_algo {hash_id} is not 1, 7 or 8"
            ))
        })?;
    let evidence = evidence.ok_or_else(|| missing("aa_evidence"))?;
    Ok(CocoEvidence {
        aa_tee_type: tee.ok_or_else(|| missing("tee_type"))?,
        aa_evidence: STANDARD.encode(evidence),
        aa_additional_evidence: additional.map(|b| STANDARD.encode(b)),
        aa_runtime_data: runtime_data.ok_or_else(|| missing("aa_runtime_data"))?,
        aa_runtime_data_hash_algo: hash.to_owned(),
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CocoEvidence {
        CocoEvidence::new(
            "sample",
            br#"{"svn":"1"}"#,
            None,
            r#"{"pubkey-hash":"x"}"#.into(),
        )
    }

    /// `tag(tag) [bstr inner, h'']`, as the extension carries it.
    fn tagged(tag: u64, inner: Vec<u8>) -> Vec<u8> {
        let outer = Value::Tag(
            tag,
            Box::new(Value::Array(vec![
                Value::Bytes(inner),
                Value::Bytes(vec![]),
            ])),
        );
        let mut bytes = Vec::new();
        ciborium::into_writer(&outer, &mut bytes).expect("encode");
        bytes
    }

    /// A CoCo evidence map wrapped as the extension carries it.
    fn tagged_coco(map: &Value) -> Vec<u8> {
        let mut inner = Vec::new();
        ciborium::into_writer(map, &mut inner).expect("encode");
        tagged(TAG_COCO_EVIDENCE, inner)
    }

    #[test]
    fn coco_evidence_round_trips_with_the_upstream_layout() {
        let encoded = Evidence::Coco(sample()).encode().expect("encode");
        // tag(0xC0C000) with the 4-byte argument, an array of two, a byte string.
        assert_eq!(&encoded[..7], &[0xda, 0x00, 0xc0, 0xc0, 0x00, 0x82, 0x58]);
        // The deprecated claims buffer: an empty byte string, last.
        assert_eq!(encoded.last(), Some(&0x40));
        assert_eq!(
            Evidence::decode(&encoded).expect("decode"),
            Evidence::Coco(sample())
        );
    }

    #[test]
    fn token_round_trips() {
        let token = Evidence::Token("a.b.c".into());
        let encoded = token.encode().expect("encode");
        assert_eq!(&encoded[..5], &[0xda, 0x00, 0xc0, 0xc0, 0x01]);
        assert_eq!(Evidence::decode(&encoded).expect("decode"), token);
    }

    #[test]
    fn malformed_payloads_are_refused_with_the_reason() {
        let reason = |bytes: &[u8]| Evidence::decode(bytes).expect_err("refused").to_string();
        assert!(reason(&[0xff]).starts_with("the evidence extension is malformed: not CBOR"));
        assert_eq!(
            reason(&[0x82, 0x40, 0x40]),
            "the evidence extension is malformed: the CBOR item is not tagged"
        );
        assert_eq!(
            reason(&tagged(TAG_ITA_EVIDENCE, vec![])),
            "the evidence extension has CBOR tag 0x17a000, which this implementation does not support"
        );
        let bad_hash = Value::Map(vec![
            (text("tee_type"), text("sample")),
            (text("aa_evidence"), Value::Bytes(vec![1])),
            (text("aa_runtime_data"), text("{}")),
            (text("aa_runtime_data_hash_algo"), Value::Integer(2.into())),
        ]);
        assert_eq!(
            reason(&tagged_coco(&bad_hash)),
            "the evidence extension is malformed: aa_runtime_data_hash_algo 2 is not 1, 7 or 8"
        );
    }

    /// Upstream's parser is a serde struct: key order is free and the additional evidence
    /// may be absent.
    #[test]
    fn reordered_keys_and_absent_additional_evidence_are_accepted() {
        let map = Value::Map(vec![
            (text("aa_runtime_data_hash_algo"), Value::Integer(7.into())),
            (text("aa_runtime_data"), text("{}")),
            (text("aa_evidence"), Value::Bytes(b"e".to_vec())),
            (text("tee_type"), text("tdx")),
        ]);
        let Evidence::Coco(evidence) = Evidence::decode(&tagged_coco(&map)).expect("decode") else {
            panic!("CoCo evidence expected");
        };
        assert_eq!(evidence, CocoEvidence::new("tdx", b"e", None, "{}".into()));
    }
}
