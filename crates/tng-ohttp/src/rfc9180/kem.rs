//! DHKEM(X25519, HKDF-SHA256), RFC 9180 §4.1 and §7.1.3.

use aws_lc_rs::agreement;
use zeroize::Zeroizing;

use super::kdf::{labeled_expand, labeled_extract};
use super::{Error, PrivateKey, KEM_ID, X25519_LEN};

/// `Nsecret`.
const NSECRET: usize = 32;

const SUITE_ID: [u8; 5] = {
    let [a, b] = KEM_ID.to_be_bytes();
    [b'K', b'E', b'M', a, b]
};

pub(crate) type SharedSecret = Zeroizing<[u8; NSECRET]>;

/// DH(sk, pk), refusing the all-zero output (§7.1.4).
fn dh(sk: &PrivateKey, pk: &[u8; X25519_LEN]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, pk);
    agreement::agree(&sk.key, peer, Error::DiffieHellman, |z| {
        let mut out = Zeroizing::new([0u8; 32]);
        if z.len() != out.len() {
            return Err(Error::DiffieHellman);
        }
        out.copy_from_slice(z);
        // AWS-LC already fails on a small-order point; the RFC asks every implementation
        // to check, and a constant-time comparison keeps the check free of timing leaks.
        if aws_lc_rs::constant_time::verify_slices_are_equal(&out[..], &[0u8; 32]).is_ok() {
            return Err(Error::DiffieHellman);
        }
        Ok(out)
    })
}

fn extract_and_expand(dh: &[&[u8]], kem_context: &[&[u8]]) -> Result<SharedSecret, Error> {
    let eae_prk = Zeroizing::new(labeled_extract(&SUITE_ID, b"", b"eae_prk", dh));
    let mut shared_secret = Zeroizing::new([0u8; NSECRET]);
    labeled_expand(
        &SUITE_ID,
        &eae_prk,
        b"shared_secret",
        kem_context,
        &mut shared_secret[..],
    )?;
    Ok(shared_secret)
}

/// Encap with the ephemeral key chosen by the caller; `enc` is its public key.
pub(crate) fn encap(
    recipient: &[u8; X25519_LEN],
    ephemeral: &PrivateKey,
) -> Result<SharedSecret, Error> {
    let dh = dh(ephemeral, recipient)?;
    extract_and_expand(&[&dh[..]], &[ephemeral.public_key(), recipient])
}

pub(crate) fn decap(enc: &[u8; X25519_LEN], recipient: &PrivateKey) -> Result<SharedSecret, Error> {
    let dh = dh(recipient, enc)?;
    extract_and_expand(&[&dh[..]], &[enc, recipient.public_key()])
}

pub(crate) fn auth_encap(
    recipient: &[u8; X25519_LEN],
    ephemeral: &PrivateKey,
    sender: &PrivateKey,
) -> Result<SharedSecret, Error> {
    let dh_e = dh(ephemeral, recipient)?;
    let dh_s = dh(sender, recipient)?;
    extract_and_expand(
        &[&dh_e[..], &dh_s[..]],
        &[ephemeral.public_key(), recipient, sender.public_key()],
    )
}

pub(crate) fn auth_decap(
    enc: &[u8; X25519_LEN],
    recipient: &PrivateKey,
    sender: &[u8; X25519_LEN],
) -> Result<SharedSecret, Error> {
    let dh_e = dh(recipient, enc)?;
    let dh_s = dh(recipient, sender)?;
    extract_and_expand(
        &[&dh_e[..], &dh_s[..]],
        &[enc, recipient.public_key(), sender],
    )
}

/// DeriveKeyPair's private half (§7.1.3): for X25519 the expanded bytes are the key as is.
pub(crate) fn derive_secret(ikm: &[u8]) -> Result<Zeroizing<[u8; X25519_LEN]>, Error> {
    let dkp_prk = Zeroizing::new(labeled_extract(&SUITE_ID, b"", b"dkp_prk", &[ikm]));
    let mut sk = Zeroizing::new([0u8; X25519_LEN]);
    labeled_expand(&SUITE_ID, &dkp_prk, b"sk", &[], &mut sk[..])?;
    Ok(sk)
}
