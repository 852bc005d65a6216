//! `/challenge`: nonces wrapped in RS384 JWTs that expire after five minutes, and the check the
//! AS applies when such a JWT comes back as `runtime_data.structured.challenge_token`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

use super::jws;

/// Lifetime of a challenge token, as the openanolis challenger issues them.
const CHALLENGE_SECONDS: u64 = 300;

pub struct Challenger {
    key: rsa::RsaPrivateKey,
    public: rsa::RsaPublicKey,
}

impl Challenger {
    pub fn new(key: rsa::RsaPrivateKey) -> Self {
        let public = key.to_public_key();
        Self { key, public }
    }

    /// The `/challenge` response body.
    pub fn issue(&self, now: u64) -> Value {
        let mut nonce = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut nonce);
        let nonce = STANDARD.encode(nonce);
        let claims = json!({"nonce": nonce, "iat": now, "exp": now + CHALLENGE_SECONDS});
        let jwt = jws::sign_rs384(&json!({"typ": "JWT", "alg": "RS384"}), &claims, &self.key);
        json!({"nonce": nonce, "extra-params": {"jwt": jwt}})
    }

    /// Accepts only tokens this service signed that have not expired.
    pub fn check(&self, token: &str, now: u64) -> Result<(), String> {
        let claims = jws::verify_rs384(token, &self.public)?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| "challenge token has no numeric exp".to_string())?;
        if exp <= now {
            return Err(format!("challenge token expired at {exp} (now {now})"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenger() -> Challenger {
        Challenger::new(rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("key"))
    }

    #[test]
    fn issued_tokens_pass_until_they_expire() {
        let challenger = challenger();
        let body = challenger.issue(1_000);
        let jwt = body["extra-params"]["jwt"].as_str().expect("jwt");
        assert_eq!(
            STANDARD
                .decode(body["nonce"].as_str().expect("nonce"))
                .expect("b64")
                .len(),
            32
        );
        assert!(challenger.check(jwt, 1_000).is_ok());
        assert!(challenger.check(jwt, 1_299).is_ok());
        assert!(challenger.check(jwt, 1_300).is_err());
    }

    #[test]
    fn tokens_of_another_key_are_refused() {
        let issued = challenger().issue(1_000);
        let jwt = issued["extra-params"]["jwt"].as_str().expect("jwt");
        assert!(challenger().check(jwt, 1_000).is_err());
        assert!(challenger().check("dummy nonce", 1_000).is_err());
    }
}
