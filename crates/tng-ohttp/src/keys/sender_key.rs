//! The ingress's own static X25519 key for HPKE Auth mode (client attestation): its public
//! half is what the ingress gets attested, the secret authenticates every request it seals.

use std::fmt;

use super::server_key::key_setup;
use crate::rfc9180::PrivateKey;

/// Keeps the public half next to the secret, so sealing a request in Auth mode costs no
/// public-key derivation.
#[derive(Clone)]
pub struct SenderKey {
    key: PrivateKey,
    secret: [u8; 32],
}

impl SenderKey {
    pub fn generate() -> SenderKey {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let key = key_setup(PrivateKey::from_bytes(&secret));
        SenderKey { key, secret }
    }

    pub fn public_key(&self) -> &[u8; 32] {
        self.key.public_key()
    }

    /// For [`crate::chunked::ClientRequest::new_auth`].
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// For [`crate::chunked::ClientRequest::new_auth_with_key`].
    pub(crate) fn hpke_key(&self) -> &PrivateKey {
        &self.key
    }
}

impl fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKey")
            .field("public", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::SenderKey;
    use crate::keys::ServerKey;

    #[test]
    fn public_half_matches_the_secret() {
        let key = SenderKey::generate();
        let same = ServerKey::from_private_bytes(*key.secret(), 0);
        assert_eq!(same.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(&hex::encode(key.secret())));
    }
}
