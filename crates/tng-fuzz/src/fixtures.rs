//! Fixed keys and trust settings shared by the targets and the corpus generator
//! (`examples/seed_corpus.rs`): seeds encrypted or signed with them get past the first checks,
//! so the fuzzer starts deep inside the decoders instead of at "wrong key".

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use serde_json::json;
use tng_attest::claims::{server_claims, Claims};
use tng_attest::verify::anchors::pem_certificates;
use tng_attest::{TokenVerifier, Trust, TrustAnchors};
use tng_ohttp::api::HpkeKeyConfig;
use tng_ohttp::chunked::ClientRequest;
use tng_ohttp::keys::ServerKey;

/// The egress key every chunked request seed is encrypted to.
pub const SERVER_SECRET: [u8; 32] = *b"tng-fuzz fixed egress hpke key!!";
pub const SERVER_KEY_ID: u8 = 1;
/// The ingress static key of HPKE Auth mode seeds.
pub const SENDER_SECRET: [u8; 32] = *b"tng-fuzz fixed ingress auth key!";

/// The Attestation Service CA and token signer (ES256, P-256) of the token seeds; generated once
/// with openssl for fuzzing only, valid until 2126.
pub const AS_CA_PEM: &str = include_str!("../fixtures/as-ca.pem");
pub const AS_SIGNER_PEM: &str = include_str!("../fixtures/as-signer.pem");
/// PKCS#8 DER of the signer's private key (used by the corpus generator only).
pub const AS_SIGNER_KEY_PKCS8: &[u8] = include_bytes!("../fixtures/as-signer-key.pk8");

/// Token verification time: fixed so that corpus tokens never expire and results never depend
/// on the day the fuzzer runs (2027-01-01T00:00:00Z).
pub const VERIFY_AT_UNIX: u64 = 1_798_761_600;
/// `exp` of the token seeds (2100-01-01).
pub const TOKEN_EXP: u64 = 4_102_444_800;
pub const CHALLENGE: &str = "tng-fuzz-challenge";
pub const POLICY_ID: &str = "default";

pub fn server_key() -> &'static ServerKey {
    static KEY: OnceLock<ServerKey> = OnceLock::new();
    KEY.get_or_init(|| ServerKey::from_private_bytes(SERVER_SECRET, SERVER_KEY_ID))
}

/// The public half of [`SENDER_SECRET`].
pub fn sender_public() -> &'static [u8; 32] {
    static PUBLIC: OnceLock<[u8; 32]> = OnceLock::new();
    PUBLIC.get_or_init(|| *ServerKey::from_private_bytes(SENDER_SECRET, 0).public_key())
}

/// The request whose responses the `chunked_response` target decodes: its ephemeral key comes
/// from a fixed-seed RNG, so the response secret is the same in every run.
pub fn response_client() -> &'static ClientRequest {
    static CLIENT: OnceLock<ClientRequest> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::from_seed(*b"tng-fuzz fixed ephemeral key rng");
        match ClientRequest::new_with_rng(server_key().config(), &mut rng) {
            Ok(client) => client,
            // The fixed config always has an AEAD and a valid X25519 key.
            Err(e) => panic!("fixture client request: {e}"),
        }
    })
}

/// The key config object the egress advertises for [`server_key`].
pub fn hpke_key_config() -> HpkeKeyConfig {
    HpkeKeyConfig::new(std::slice::from_ref(server_key().config()), TOKEN_EXP)
}

/// The runtime-data claims a background-check ingress expects the egress's token to echo.
pub fn expected_claims() -> &'static Claims {
    static CLAIMS: OnceLock<Claims> = OnceLock::new();
    CLAIMS.get_or_init(|| {
        let config = hpke_key_config();
        server_claims(
            Some(CHALLENGE),
            json!({
                "expire_timestamp": config.expire_timestamp,
                "encoded_key_config_list": config.encoded_key_config_list,
            }),
        )
    })
}

pub fn verify_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(VERIFY_AT_UNIX)
}

/// `skip_as_token_cert_verify`: the token's own JWK is trusted, so a peer controls every byte
/// that reaches the claim checks.
pub fn skip_verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| TokenVerifier::new(Trust::Skip, Vec::new()))
}

/// Trust anchored at [`AS_CA_PEM`] with policy id [`POLICY_ID`] required.
pub fn anchored_verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let anchors = pem_certificates(AS_CA_PEM.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|certs| TrustAnchors::from_certs(certs).map_err(|e| e.to_string()));
        match anchors {
            Ok(anchors) => TokenVerifier::new(Trust::Anchors(anchors), vec![POLICY_ID.to_owned()]),
            Err(e) => panic!("fixture trust anchor: {e}"),
        }
    })
}
