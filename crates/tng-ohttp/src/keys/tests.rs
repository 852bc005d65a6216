use base64::Engine as _;

use super::*;

const OBSERVED_LIST_B64: &str = "AC0AACCfX/KrJJGR5JZK02t8Hy+dagimzJFRxh85w8dEAND+dwAIAAEAAwABAAE=";
const OBSERVED_PK_HEX: &str = "9f5ff2ab249191e4964ad36b7c1f2f9d6a08a6cc9151c61f39c3c74400d0fe77";

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn observed_key_config_list_round_trips() {
    let bytes = b64(OBSERVED_LIST_B64);
    let configs = decode_key_config_list(&bytes).unwrap();
    assert_eq!(configs.len(), 1);
    let config = &configs[0];
    assert_eq!(config.key_id, 0);
    assert_eq!(hex::encode(config.public_key), OBSERVED_PK_HEX);
    assert_eq!(config.aeads, vec![Aead::ChaCha20Poly1305, Aead::Aes128Gcm]);
    assert_eq!(encode_key_config_list(&configs), bytes);
    // Without the list's length prefix.
    assert_eq!(config.encode(), bytes[2..]);
}

#[test]
fn aead_ids_and_sizes() {
    assert_eq!(Aead::Aes128Gcm.id(), 0x0001);
    assert_eq!(Aead::ChaCha20Poly1305.id(), 0x0003);
    assert_eq!(Aead::from_id(0x0003), Some(Aead::ChaCha20Poly1305));
    assert_eq!(Aead::from_id(0x0002), None, "AES-256-GCM is not supported");
    assert_eq!(Aead::ChaCha20Poly1305.response_nonce_len(), 32);
    assert_eq!(Aead::Aes128Gcm.response_nonce_len(), 16);
}

fn entry(kem: u16, pk_len: usize, suites: &[(u16, u16)]) -> Vec<u8> {
    let mut e = vec![7u8];
    e.extend_from_slice(&kem.to_be_bytes());
    e.extend(std::iter::repeat_n(0xab, pk_len));
    e.extend_from_slice(&((suites.len() * 4) as u16).to_be_bytes());
    for (kdf, aead) in suites {
        e.extend_from_slice(&kdf.to_be_bytes());
        e.extend_from_slice(&aead.to_be_bytes());
    }
    let mut out = (e.len() as u16).to_be_bytes().to_vec();
    out.extend(e);
    out
}

#[test]
fn unsupported_entries_and_suites_are_dropped() {
    let mut list = entry(0x0010, 65, &[(1, 1)]); // P-256: skipped whole
    list.extend(entry(0x0020, 32, &[(1, 2), (2, 1)])); // no supported suite: skipped
    list.extend(entry(0x0020, 32, &[(1, 2), (1, 1), (3, 3), (1, 3)]));
    let configs = decode_key_config_list(&list).unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].key_id, 7);
    assert_eq!(configs[0].public_key, [0xab; 32]);
    assert_eq!(
        configs[0].aeads,
        vec![Aead::Aes128Gcm, Aead::ChaCha20Poly1305]
    );
    assert_eq!(decode_key_config_list(&[]).unwrap(), vec![]);
}

#[test]
fn malformed_lists_are_errors() {
    let good = entry(0x0020, 32, &[(1, 1)]);
    // Truncated anywhere.
    for cut in 1..good.len() {
        assert_eq!(
            decode_key_config_list(&good[..cut]),
            Err(KeyConfigError::Truncated),
            "cut at {cut}"
        );
    }
    // Entry longer than its content.
    let mut long = good.clone();
    long.push(0);
    let len = u16::from_be_bytes([long[0], long[1]]) + 1;
    long[..2].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        decode_key_config_list(&long),
        Err(KeyConfigError::LengthMismatch { .. })
    ));
    // Symmetric suite length not a positive multiple of 4.
    let mut odd = good.clone();
    let at = 2 + 1 + 2 + 32;
    odd[at..at + 2].copy_from_slice(&3u16.to_be_bytes());
    assert_eq!(
        decode_key_config_list(&odd),
        Err(KeyConfigError::InvalidSuiteLength(3))
    );
    let empty = entry(0x0020, 32, &[]);
    assert_eq!(
        decode_key_config_list(&empty),
        Err(KeyConfigError::InvalidSuiteLength(0))
    );
}

#[test]
fn generated_key_offers_upstream_suites_and_hides_secret() {
    let key = ServerKey::generate(3);
    assert_eq!(key.config().key_id, 3);
    // Upstream 2.12's order: an ingress takes the first, and AES-GCM is the cheaper one on
    // machines with AES instructions.
    assert_eq!(
        key.config().aeads,
        vec![Aead::Aes128Gcm, Aead::ChaCha20Poly1305]
    );
    assert_eq!(
        ServerKey::from_private_bytes([1; 32], 0).config().aeads,
        key.config().aeads
    );
    let secret = [0x42u8; 32];
    let key = ServerKey::from_private_bytes(secret, 0);
    let debug = format!("{key:?}");
    assert!(!debug.contains(&hex::encode(secret)), "{debug}");
    assert!(!debug.contains("66, 66, 66"), "{debug}");
    assert!(debug.contains(&hex::encode(key.public_key())));
}

// RFC 7748 §6.1: Alice's private key, wrapped as PKCS#8 v1 (RFC 8410 §7).
const ALICE_SK: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PK: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const ALICE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIHcHbQpzGKV9PBbBclGyZkXfTC+H68CZKrF3+6UduSwq
-----END PRIVATE KEY-----
";
// RFC 8410 §10.3: an Ed25519 private key.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
";

#[test]
fn pkcs8_x25519_known_key() {
    // The PEM is exactly the RFC 8410 encoding of the RFC 7748 secret.
    let mut der = hex::decode("302e020100300506032b656e04220420").unwrap();
    der.extend(hex::decode(ALICE_SK).unwrap());
    let body = ALICE_PEM.lines().nth(1).unwrap();
    assert_eq!(b64(body), der);

    let key = ServerKey::from_pkcs8_pem(ALICE_PEM, 0).unwrap();
    assert_eq!(hex::encode(key.public_key()), ALICE_PK);
    assert_eq!(key.config().key_id, 0);
    // Leading text and CRLF line endings are tolerated.
    let noisy = format!("a comment\r\n{}", ALICE_PEM.replace('\n', "\r\n"));
    let key = ServerKey::from_pkcs8_pem(&noisy, 5).unwrap();
    assert_eq!(hex::encode(key.public_key()), ALICE_PK);
}

#[test]
fn pkcs8_round_trip_and_v2() {
    let key = ServerKey::generate(0);
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = ServerKey::from_pkcs8_pem(&pem, 0).unwrap();
    assert_eq!(again.public_key(), key.public_key());

    // PKCS#8 v2 (OneAsymmetricKey with the public key attached).
    use pkcs8::der::asn1::OctetStringRef;
    use pkcs8::der::{Encode, EncodePem};
    let sk = hex::decode(ALICE_SK).unwrap();
    let inner = OctetStringRef::new(&sk).unwrap().to_der().unwrap();
    let pk = hex::decode(ALICE_PK).unwrap();
    let v2 = |public: &[u8]| {
        let mut info = pkcs8::PrivateKeyInfo::new(
            pkcs8::AlgorithmIdentifierRef {
                oid: pkcs8::ObjectIdentifier::new_unwrap("1.3.101.110"),
                parameters: None,
            },
            &inner,
        );
        info.public_key = Some(public);
        info.to_pem(pkcs8::LineEnding::LF).unwrap()
    };
    let key = ServerKey::from_pkcs8_pem(&v2(&pk), 0).unwrap();
    assert_eq!(hex::encode(key.public_key()), ALICE_PK);
    assert_eq!(
        ServerKey::from_pkcs8_pem(&v2(&[1u8; 32]), 0).unwrap_err(),
        KeyLoadError::PublicKeyMismatch
    );
}

#[test]
fn pkcs8_rejections_are_clear() {
    let err = ServerKey::from_pkcs8_pem(ED25519_PEM, 0).unwrap_err();
    assert_eq!(
        err,
        KeyLoadError::UnsupportedAlgorithm {
            oid: "1.3.101.112".into(),
            name: "Ed25519".into()
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("Ed25519") && msg.contains("X25519"), "{msg}");

    let public = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEA3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=
-----END PUBLIC KEY-----
";
    assert_eq!(
        ServerKey::from_pkcs8_pem(public, 0).unwrap_err(),
        KeyLoadError::WrongPemLabel("PUBLIC KEY".into())
    );
    assert!(matches!(
        ServerKey::from_pkcs8_pem("not a pem", 0),
        Err(KeyLoadError::InvalidPem(_))
    ));
    let garbage = "-----BEGIN PRIVATE KEY-----\nAAECAw==\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        ServerKey::from_pkcs8_pem(garbage, 0),
        Err(KeyLoadError::InvalidPkcs8PrivateKey(_))
    ));
}
