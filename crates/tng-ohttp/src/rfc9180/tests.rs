//! Known-answer tests from RFC 9180 Appendix A, a cross-check against the `hpke` crate in both
//! directions, and the failure cases the RFC names.

use std::collections::HashMap;

use hpke::{Deserializable as _, Kem as _, Serializable as _};

use super::*;

const VECTORS: &str = include_str!("../../testdata/rfc9180-appendix-a.txt");

/// (sequence number, aad, nonce, ct)
type Encryption = (u64, Vec<u8>, Vec<u8>, Vec<u8>);

struct Vector {
    name: String,
    fields: HashMap<String, String>,
    encryptions: Vec<Encryption>,
    /// (exporter_context, L, exported_value)
    exports: Vec<(Vec<u8>, usize, Vec<u8>)>,
}

impl Vector {
    fn bytes(&self, field: &str) -> Vec<u8> {
        let value = self
            .fields
            .get(field)
            .unwrap_or_else(|| panic!("{}: no field {field}", self.name));
        hex::decode(value).unwrap_or_else(|e| panic!("{}: {field}: {e}", self.name))
    }

    fn key(&self, field: &str) -> [u8; 32] {
        self.bytes(field).try_into().unwrap()
    }

    fn aead(&self) -> Aead {
        Aead::from_id(self.fields["aead_id"].parse().unwrap()).unwrap()
    }

    fn auth(&self) -> bool {
        match self.fields["mode"].as_str() {
            "0" => false,
            "2" => true,
            other => panic!("{}: unexpected mode {other}", self.name),
        }
    }
}

fn vectors() -> Vec<Vector> {
    let mut out: Vec<Vector> = Vec::new();
    for line in VECTORS.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push(Vector {
                name: name.to_string(),
                fields: HashMap::new(),
                encryptions: Vec::new(),
                exports: Vec::new(),
            });
            continue;
        }
        let v = out.last_mut().expect("a field before the first section");
        let (field, value) = line.split_once(": ").expect("name: value");
        let parts: Vec<&str> = value.split(' ').collect();
        match field {
            "encryption" => v.encryptions.push((
                parts[0].parse().unwrap(),
                hex::decode(parts[1]).unwrap(),
                hex::decode(parts[2]).unwrap(),
                hex::decode(parts[3]).unwrap(),
            )),
            "export" => v.exports.push((
                if parts[0] == "-" {
                    Vec::new()
                } else {
                    hex::decode(parts[0]).unwrap()
                },
                parts[1].parse().unwrap(),
                hex::decode(parts[2]).unwrap(),
            )),
            _ => {
                v.fields.insert(field.to_string(), value.to_string());
            }
        }
    }
    assert_eq!(
        out.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["A.1.1", "A.1.3", "A.2.1", "A.2.3"]
    );
    out
}

#[test]
fn derive_key_pair_matches_appendix_a() {
    for v in vectors() {
        for role in ["E", "R", "S"] {
            let Some(ikm) = v.fields.get(&format!("ikm{role}")) else {
                continue;
            };
            let key = PrivateKey::derive(&hex::decode(ikm).unwrap()).unwrap();
            assert_eq!(
                *key.to_bytes().unwrap(),
                v.key(&format!("sk{role}m")),
                "{} sk{role}",
                v.name
            );
            assert_eq!(
                key.public_key(),
                &v.key(&format!("pk{role}m")),
                "{} pk{role}",
                v.name
            );
            let again = PrivateKey::from_bytes(&v.key(&format!("sk{role}m"))).unwrap();
            assert_eq!(again.public_key(), key.public_key(), "{}", v.name);
        }
    }
}

#[test]
fn kem_and_key_schedule_match_appendix_a() {
    for v in vectors() {
        let sk_e = PrivateKey::from_bytes(&v.key("skEm")).unwrap();
        let sk_r = PrivateKey::from_bytes(&v.key("skRm")).unwrap();
        let pk_r = v.key("pkRm");
        let enc = v.key("enc");
        assert_eq!(sk_e.public_key(), &enc, "{} enc", v.name);
        let (sent, received, mode) = if v.auth() {
            let sk_s = PrivateKey::from_bytes(&v.key("skSm")).unwrap();
            (
                kem::auth_encap(&pk_r, &sk_e, &sk_s).unwrap(),
                kem::auth_decap(&enc, &sk_r, &v.key("pkSm")).unwrap(),
                MODE_AUTH,
            )
        } else {
            (
                kem::encap(&pk_r, &sk_e).unwrap(),
                kem::decap(&enc, &sk_r).unwrap(),
                MODE_BASE,
            )
        };
        assert_eq!(sent[..], v.bytes("shared_secret"), "{} encap", v.name);
        assert_eq!(received[..], v.bytes("shared_secret"), "{} decap", v.name);

        let info = v.bytes("info");
        let suite = suite_id(v.aead());
        let (context, secret) = schedule_inputs(&suite, mode, &sent, &info);
        assert_eq!(context[..], v.bytes("key_schedule_context"), "{}", v.name);
        assert_eq!(secret[..], v.bytes("secret"), "{}", v.name);
        let schedule = key_schedule(v.aead(), mode, &sent, &info).unwrap();
        assert_eq!(
            schedule.key[..v.aead().key_len()],
            v.bytes("key"),
            "{}",
            v.name
        );
        assert_eq!(schedule.base_nonce[..], v.bytes("base_nonce"), "{}", v.name);
        assert_eq!(
            schedule.exporter_secret[..],
            v.bytes("exporter_secret"),
            "{}",
            v.name
        );
    }
}

fn setup_pair(v: &Vector) -> (SenderContext, ReceiverContext) {
    let sk_e = PrivateKey::from_bytes(&v.key("skEm")).unwrap();
    let sk_r = PrivateKey::from_bytes(&v.key("skRm")).unwrap();
    let sk_s = v
        .auth()
        .then(|| PrivateKey::from_bytes(&v.key("skSm")).unwrap());
    let pk_s = v.auth().then(|| v.key("pkSm"));
    let info = v.bytes("info");
    let mode_s = sk_s.as_ref().map_or(SenderMode::Base, SenderMode::Auth);
    let (enc, sender) = setup_sender(v.aead(), &v.key("pkRm"), &info, mode_s, &sk_e).unwrap();
    assert_eq!(enc, v.key("enc"), "{}", v.name);
    let mode_r = pk_s.as_ref().map_or(ReceiverMode::Base, ReceiverMode::Auth);
    let receiver = setup_receiver(v.aead(), &enc, &sk_r, &info, mode_r).unwrap();
    (sender, receiver)
}

#[test]
fn encryptions_and_exports_match_appendix_a() {
    for v in vectors() {
        let (mut sender, mut receiver) = setup_pair(&v);
        let pt = v.bytes("pt");
        let last = v.encryptions.iter().map(|e| e.0).max().unwrap();
        // Every sequence number up to the last listed is used, so the listed ones are reached
        // through the real counter rather than a test hook.
        for seq in 0..=last {
            let listed = v.encryptions.iter().find(|e| e.0 == seq);
            let aad = listed.map_or_else(|| format!("Count-{seq}").into_bytes(), |e| e.1.clone());
            if let Some((_, _, nonce, _)) = listed {
                let expected: [u8; NONCE_LEN] = nonce[..].try_into().unwrap();
                assert_eq!(
                    sender.0.aead.nonce().as_ref(),
                    &expected,
                    "{} nonce {seq}",
                    v.name
                );
            }
            let ct = sender.seal(&aad, &pt).unwrap();
            if let Some((_, _, _, expected)) = listed {
                assert_eq!(&ct, expected, "{} ct {seq}", v.name);
            }
            assert_eq!(
                receiver.open(&aad, &ct).unwrap(),
                pt,
                "{} open {seq}",
                v.name
            );
        }
        for (context, len, expected) in &v.exports {
            for (side, got) in [
                ("sender", export(|o| sender.export(context, o), *len)),
                ("receiver", export(|o| receiver.export(context, o), *len)),
            ] {
                assert_eq!(&got, expected, "{} {side} export {context:02x?}", v.name);
            }
        }
    }
}

fn export(f: impl FnOnce(&mut [u8]) -> Result<(), Error>, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    f(&mut out).unwrap();
    out
}

#[test]
fn listed_ciphertexts_open_in_place() {
    for v in vectors() {
        let (_, mut receiver) = setup_pair(&v);
        let (_, aad, _, ct) = &v.encryptions[0];
        let mut buf = ct.clone();
        let pt = receiver.open_in_place(aad, &mut buf).unwrap();
        assert_eq!(pt, &v.bytes("pt")[..], "{}", v.name);
    }
}

#[test]
fn a_failed_open_leaves_the_sequence_where_it_was() {
    let v = &vectors()[0];
    let (_, mut receiver) = setup_pair(v);
    let (_, aad, _, ct) = &v.encryptions[0];
    let mut tampered = ct.clone();
    tampered[0] ^= 1;
    assert_eq!(receiver.open(aad, &tampered), Err(Error::Open));
    assert_eq!(receiver.open(b"other aad", ct), Err(Error::Open));
    assert_eq!(receiver.open(aad, &ct[..TAG_LEN - 1]), Err(Error::Open));
    assert_eq!(receiver.open(aad, ct).unwrap(), v.bytes("pt"));
    // The next message is sequence number 1.
    let (_, aad1, _, ct1) = &v.encryptions[1];
    assert_eq!(receiver.open(aad1, ct1).unwrap(), v.bytes("pt"));
}

#[test]
fn auth_mode_binds_the_sender_key() {
    let v = &vectors()[1];
    assert!(v.auth());
    let sk_r = PrivateKey::from_bytes(&v.key("skRm")).unwrap();
    let info = v.bytes("info");
    let (_, aad, _, ct) = &v.encryptions[0];
    let wrong_sender = PrivateKey::derive(b"someone else").unwrap();
    for mode in [
        ReceiverMode::Base,
        ReceiverMode::Auth(wrong_sender.public_key()),
    ] {
        let mut receiver = setup_receiver(v.aead(), &v.key("enc"), &sk_r, &info, mode).unwrap();
        assert_eq!(receiver.open(aad, ct), Err(Error::Open), "{mode:?}");
    }
    let mut other_info = setup_receiver(
        v.aead(),
        &v.key("enc"),
        &sk_r,
        b"other info",
        ReceiverMode::Auth(&v.key("pkSm")),
    )
    .unwrap();
    assert_eq!(other_info.open(aad, ct), Err(Error::Open));
}

#[test]
fn small_order_public_keys_are_refused() {
    // The identity, and a point of order 8 (RFC 7748 §6.1 requires the all-zero check
    // exactly for such inputs).
    let small_order = [
        [0u8; 32],
        {
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        },
        hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
            .unwrap()
            .try_into()
            .unwrap(),
    ];
    let key = PrivateKey::derive(b"recipient").unwrap();
    let eph = PrivateKey::derive(b"ephemeral").unwrap();
    for point in &small_order {
        for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
            assert_eq!(
                setup_sender(aead, point, b"", SenderMode::Base, &eph).err(),
                Some(Error::DiffieHellman)
            );
            assert_eq!(
                setup_sender(aead, key.public_key(), b"", SenderMode::Base, &eph)
                    .map(|(enc, _)| enc)
                    .ok(),
                Some(*eph.public_key())
            );
            assert_eq!(
                setup_receiver(aead, point, &key, b"", ReceiverMode::Base).err(),
                Some(Error::DiffieHellman)
            );
            assert_eq!(
                setup_receiver(aead, eph.public_key(), &key, b"", ReceiverMode::Auth(point)).err(),
                Some(Error::DiffieHellman)
            );
        }
    }
}

#[test]
fn export_length_is_limited_to_255_hash_lengths() {
    let v = &vectors()[0];
    let (sender, _) = setup_pair(v);
    let mut max = vec![0u8; 255 * kdf::NH];
    sender.export(b"", &mut max).unwrap();
    let mut over = vec![0u8; 255 * kdf::NH + 1];
    assert_eq!(sender.export(b"", &mut over), Err(Error::Kdf));
}

#[test]
fn the_sequence_number_never_wraps() {
    let v = &vectors()[0];
    let (mut sender, mut receiver) = setup_pair(v);
    sender.0.aead.seq = u64::MAX - 1;
    receiver.0.aead.seq = u64::MAX - 1;
    let ct = sender.seal(b"", b"last").unwrap();
    assert_eq!(receiver.open(b"", &ct).unwrap(), b"last");
    assert_eq!(sender.seal(b"", b"one more"), Err(Error::MessageLimit));
    assert_eq!(receiver.open(b"", &ct), Err(Error::MessageLimit));
}

#[test]
fn private_keys_round_trip_and_stay_out_of_debug_output() {
    let key = PrivateKey::generate().unwrap();
    let bytes = key.to_bytes().unwrap();
    let again = PrivateKey::from_bytes(&bytes).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let debug = format!("{key:?}");
    assert!(debug.contains(&hex::encode(key.public_key())));
    assert!(!debug.contains(&hex::encode(*bytes)));
    assert_ne!(
        PrivateKey::generate().unwrap().public_key(),
        key.public_key()
    );
}

// ---- cross-check with the `hpke` crate ----

type HKem = hpke::kem::X25519HkdfSha256;
type HKdf = hpke::kdf::HkdfSha256;

/// `hpke` is written against rand_core 0.9; this drives it from rand 0.8's OsRng.
struct OsRng09;

impl hpke::rand_core::RngCore for OsRng09 {
    fn next_u32(&mut self) -> u32 {
        rand::RngCore::next_u32(&mut rand::rngs::OsRng)
    }
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut rand::rngs::OsRng)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, dst)
    }
}

impl hpke::rand_core::CryptoRng for OsRng09 {}

const MESSAGES: [(&[u8], &[u8]); 4] = [
    (b"", b""),
    (b"aad", b"first message"),
    (b"", &[0x5a; 1000]),
    (b"final", b"last"),
];

/// Ours seals, `hpke` opens, and the other way round, in the mode given, with exports
/// compared on both sides.
fn cross_check<A: hpke::aead::Aead>(aead: Aead, auth: bool) {
    let info = b"cross-check info";
    let (hsk_r, hpk_r) = HKem::derive_keypair(b"recipient ikm");
    let (hsk_s, hpk_s) = HKem::derive_keypair(b"sender ikm");
    let sk_r = PrivateKey::derive(b"recipient ikm").unwrap();
    let sk_s = PrivateKey::derive(b"sender ikm").unwrap();
    assert_eq!(sk_r.public_key()[..], hpk_r.to_bytes()[..]);
    assert_eq!(sk_s.public_key()[..], hpk_s.to_bytes()[..]);
    let what = format!("{aead:?} auth={auth}");

    // Ours → hpke.
    let eph = PrivateKey::generate().unwrap();
    let mode = if auth {
        SenderMode::Auth(&sk_s)
    } else {
        SenderMode::Base
    };
    let (enc, mut ours) = setup_sender(aead, sk_r.public_key(), info, mode, &eph).unwrap();
    let hmode = if auth {
        hpke::OpModeR::Auth(hpk_s.clone())
    } else {
        hpke::OpModeR::Base
    };
    let encapped = <HKem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
    let mut theirs =
        hpke::setup_receiver::<A, HKdf, HKem>(&hmode, &hsk_r, &encapped, info).unwrap();
    for (aad, pt) in MESSAGES {
        let ct = ours.seal(aad, pt).unwrap();
        assert_eq!(theirs.open(&ct, aad).unwrap(), pt, "{what}: ours → hpke");
    }
    let (mut a, mut b) = ([0u8; 48], [0u8; 48]);
    ours.export(b"ctx", &mut a).unwrap();
    theirs.export(b"ctx", &mut b).unwrap();
    assert_eq!(a, b, "{what}: sender export");

    // hpke → ours.
    let hmode = if auth {
        hpke::OpModeS::Auth((hsk_s.clone(), hpk_s.clone()))
    } else {
        hpke::OpModeS::Base
    };
    let (encapped, mut theirs) =
        hpke::setup_sender::<A, HKdf, HKem, _>(&hmode, &hpk_r, info, &mut OsRng09).unwrap();
    let enc: [u8; 32] = encapped.to_bytes()[..].try_into().unwrap();
    let mode = if auth {
        ReceiverMode::Auth(sk_s.public_key())
    } else {
        ReceiverMode::Base
    };
    let mut ours = setup_receiver(aead, &enc, &sk_r, info, mode).unwrap();
    for (aad, pt) in MESSAGES {
        let ct = theirs.seal(pt, aad).unwrap();
        assert_eq!(ours.open(aad, &ct).unwrap(), pt, "{what}: hpke → ours");
    }
    ours.export(b"", &mut a).unwrap();
    theirs.export(b"", &mut b).unwrap();
    assert_eq!(a, b, "{what}: receiver export");
}

#[test]
fn interoperates_with_the_hpke_crate() {
    for auth in [false, true] {
        cross_check::<hpke::aead::AesGcm128>(Aead::Aes128Gcm, auth);
        cross_check::<hpke::aead::AesGcm256>(Aead::Aes256Gcm, auth);
        cross_check::<hpke::aead::ChaCha20Poly1305>(Aead::ChaCha20Poly1305, auth);
    }
}
