//! The ingress's own static X25519 key for HPKE Auth mode (client attestation): its public
//! half is what the ingress gets attested, the secret authenticates every request it seals.

use std::fmt;

use hpke::kem::X25519HkdfSha256;
use hpke::{Kem, Serializable};

use super::server_key::private_key;

#[derive(Clone)]
pub struct SenderKey {
    secret: [u8; 32],
    public: [u8; 32],
}

impl SenderKey {
    pub fn generate() -> SenderKey {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let public = X25519HkdfSha256::sk_to_pk(&private_key(&secret))
            .to_bytes()
            .into();
        SenderKey { secret, public }
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// For [`crate::chunked::ClientRequest::new_auth`].
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKey")
            .field("public", &hex::encode(self.public))
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
