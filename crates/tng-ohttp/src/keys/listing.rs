//! A faithful listing of an `application/ohttp-keys` list for people and tools: unlike
//! [`decode_key_config_list`](super::decode_key_config_list), nothing is dropped, so a dump
//! shows exactly what the server offered, suites this implementation cannot use included.

use super::{KeyConfigError, KDF_HKDF_SHA256, KEM_X25519_HKDF_SHA256, X25519_LEN};

/// One entry of the list as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKeyConfig {
    pub key_id: u8,
    pub kem_id: u16,
    /// The KEM's public key; empty when the KEM is unknown (its key length is then unknown).
    pub public_key: Vec<u8>,
    /// `(kdf_id, aead_id)` pairs in the server's order.
    pub suites: Vec<(u16, u16)>,
}

/// Lists every entry of an `application/ohttp-keys` list; structural damage is an error.
pub fn list_key_configs(bytes: &[u8]) -> Result<Vec<ListedKeyConfig>, KeyConfigError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, after) = take_u16(rest)?;
        let entry = after
            .get(..usize::from(len))
            .ok_or(KeyConfigError::Truncated)?;
        rest = &after[usize::from(len)..];
        out.push(list_entry(entry)?);
    }
    Ok(out)
}

fn list_entry(entry: &[u8]) -> Result<ListedKeyConfig, KeyConfigError> {
    let (&key_id, rest) = entry.split_first().ok_or(KeyConfigError::Truncated)?;
    let (kem_id, rest) = take_u16(rest)?;
    if kem_id != KEM_X25519_HKDF_SHA256 {
        return Ok(ListedKeyConfig {
            key_id,
            kem_id,
            public_key: Vec::new(),
            suites: Vec::new(),
        });
    }
    let public_key = rest.get(..X25519_LEN).ok_or(KeyConfigError::Truncated)?;
    let (suites_len, rest) = take_u16(&rest[X25519_LEN..])?;
    if suites_len == 0 || suites_len % 4 != 0 {
        return Err(KeyConfigError::InvalidSuiteLength(suites_len));
    }
    let suites = rest
        .get(..usize::from(suites_len))
        .ok_or(KeyConfigError::Truncated)?;
    if rest.len() != suites.len() {
        return Err(KeyConfigError::LengthMismatch {
            entry: entry.len(),
            content: 1 + 2 + X25519_LEN + 2 + suites.len(),
        });
    }
    Ok(ListedKeyConfig {
        key_id,
        kem_id,
        public_key: public_key.to_vec(),
        suites: suites
            .chunks_exact(4)
            .map(|s| {
                (
                    u16::from_be_bytes([s[0], s[1]]),
                    u16::from_be_bytes([s[2], s[3]]),
                )
            })
            .collect(),
    })
}

fn take_u16(bytes: &[u8]) -> Result<(u16, &[u8]), KeyConfigError> {
    match bytes {
        [a, b, rest @ ..] => Ok((u16::from_be_bytes([*a, *b]), rest)),
        _ => Err(KeyConfigError::Truncated),
    }
}

/// The IANA name of an HPKE KEM id (RFC 9180 §7.1), or `0x….` for an unknown one.
pub fn kem_name(id: u16) -> String {
    match id {
        0x0010 => "DHKEM(P-256, HKDF-SHA256)".into(),
        0x0011 => "DHKEM(P-384, HKDF-SHA384)".into(),
        0x0012 => "DHKEM(P-521, HKDF-SHA512)".into(),
        KEM_X25519_HKDF_SHA256 => "DHKEM(X25519, HKDF-SHA256)".into(),
        0x0021 => "DHKEM(X448, HKDF-SHA512)".into(),
        other => format!("0x{other:04x}"),
    }
}

/// The IANA name of an HPKE KDF id (RFC 9180 §7.2).
pub fn kdf_name(id: u16) -> String {
    match id {
        KDF_HKDF_SHA256 => "HKDF-SHA256".into(),
        0x0002 => "HKDF-SHA384".into(),
        0x0003 => "HKDF-SHA512".into(),
        other => format!("0x{other:04x}"),
    }
}

/// The IANA name of an HPKE AEAD id (RFC 9180 §7.3).
pub fn aead_name(id: u16) -> String {
    match id {
        0x0001 => "AES-128-GCM".into(),
        0x0002 => "AES-256-GCM".into(),
        0x0003 => "ChaCha20-Poly1305".into(),
        0xffff => "Export-only".into(),
        other => format!("0x{other:04x}"),
    }
}

/// Upstream's names in its `hpke.json` (`X25519Sha256`, `HkdfSha256+Aes128Gcm`), so bundles
/// written by either implementation read the same.
pub fn kem_label(id: u16) -> String {
    match id {
        0x0010 => "P256Sha256".into(),
        0x0011 => "P384Sha384".into(),
        0x0012 => "P521Sha512".into(),
        KEM_X25519_HKDF_SHA256 => "X25519Sha256".into(),
        0x0021 => "X448Sha512".into(),
        other => format!("0x{other:04x}"),
    }
}

pub fn suite_label(kdf: u16, aead: u16) -> String {
    let kdf = match kdf {
        KDF_HKDF_SHA256 => "HkdfSha256".to_owned(),
        0x0002 => "HkdfSha384".to_owned(),
        0x0003 => "HkdfSha512".to_owned(),
        other => format!("0x{other:04x}"),
    };
    let aead = match aead {
        0x0001 => "Aes128Gcm".to_owned(),
        0x0002 => "Aes256Gcm".to_owned(),
        0x0003 => "ChaCha20Poly1305".to_owned(),
        0xffff => "Export".to_owned(),
        other => format!("0x{other:04x}"),
    };
    format!("{kdf}+{aead}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{encode_key_config_list, Aead, KeyConfig};

    #[test]
    fn lists_every_suite_in_order() {
        let config = KeyConfig {
            key_id: 7,
            public_key: [9; 32],
            aeads: vec![Aead::ChaCha20Poly1305, Aead::Aes128Gcm],
        };
        let mut bytes = encode_key_config_list(&[config]);
        // An entry with a KEM we do not know survives, delimited by its length.
        bytes.extend_from_slice(&[0, 5, 3, 0x00, 0x10, 0xaa, 0xbb]);
        let listed = list_key_configs(&bytes).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].key_id, 7);
        assert_eq!(listed[0].public_key, vec![9; 32]);
        assert_eq!(listed[0].suites, vec![(1, 3), (1, 1)]);
        assert_eq!(kem_name(listed[1].kem_id), "DHKEM(P-256, HKDF-SHA256)");
        assert!(listed[1].public_key.is_empty());
        assert_eq!(suite_label(1, 3), "HkdfSha256+ChaCha20Poly1305");
    }

    #[test]
    fn truncation_is_an_error() {
        assert_eq!(
            list_key_configs(&[0, 45, 0]),
            Err(KeyConfigError::Truncated)
        );
    }
}
