//! OHTTP key files for `"key": {"source": "file"}` egresses.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use sha2::{Digest, Sha256};

/// DER prefix of a PKCS#8 v1 `PrivateKeyInfo` holding an X25519 key (OID 1.3.101.110),
/// followed by the 32 raw private-key bytes.
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// PEM text of an X25519 private key: from `openssl genpkey -algorithm X25519` when openssl
/// is installed, otherwise built from bytes derived from `seed`.
pub fn x25519_pem(seed: &str) -> String {
    if let Ok(out) = Command::new("openssl")
        .args(["genpkey", "-algorithm", "X25519"])
        .output()
    {
        if out.status.success() && out.stdout.starts_with(b"-----BEGIN PRIVATE KEY-----") {
            return String::from_utf8(out.stdout).expect("PEM is ASCII");
        }
    }
    let mut der = X25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&Sha256::digest(seed.as_bytes()));
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

/// Writes a new X25519 key to `path` in place (one write, so a watcher never sees a
/// half-written file).
pub fn write_x25519_pem(path: &Path, seed: &str) {
    std::fs::write(path, x25519_pem(seed))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
