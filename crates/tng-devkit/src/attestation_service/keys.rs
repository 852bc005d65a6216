//! Key material generated at start: the RSA-2048 challenge key (RS384 challenge JWTs) and a
//! P-256 CA plus P-256 token-signer certificate, shaped like the chain TNG's CI configures for
//! the real AS (no EKU, subject key identifiers, signer = leaf + CA).

use std::path::{Path, PathBuf};

use anyhow::Context;
use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};

/// The token signer: its private key and its certificate chain (leaf first).
pub struct Signer {
    pub key: p256::ecdsa::SigningKey,
    /// DER certificates, leaf then CA, as they go into the JWK `x5c`.
    pub chain_der: Vec<Vec<u8>>,
    pub chain_pem: String,
    pub ca_pem: String,
}

/// Where the generated PEM files were written.
pub struct WrittenFiles {
    pub ca: PathBuf,
    pub chain: PathBuf,
}

pub fn challenge_key() -> anyhow::Result<rsa::RsaPrivateKey> {
    rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).context("RSA-2048 key generation")
}

pub fn signer() -> anyhow::Result<Signer> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        "tng-devkit sample attestation service CA",
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf_params = CertificateParams::new(Vec::<String>::new())?;
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        "tng-devkit sample attestation token signer",
    );
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let key = p256::ecdsa::SigningKey::from_pkcs8_der(&leaf_key.serialize_der())
        .map_err(|err| anyhow::anyhow!("signer key does not load as P-256: {err}"))?;
    Ok(Signer {
        key,
        chain_der: vec![leaf_cert.der().to_vec(), ca_cert.der().to_vec()],
        chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        ca_pem: ca_cert.pem(),
    })
}

/// Key material as `--persist-keys` stores it: DER blobs in standard base64, plus the PEM
/// texts served and written as they are.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    challenge_key_pkcs8: String,
    signer_key_pkcs8: String,
    chain_der: Vec<String>,
    chain_pem: String,
    ca_pem: String,
}

/// The challenge key and signer kept in `path` (created with fresh keys when missing), so a
/// restarted service keeps its identity.
pub fn load_or_create(path: &Path) -> anyhow::Result<(rsa::RsaPrivateKey, Signer)> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use p256::pkcs8::EncodePrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;

    let decode = |field: &str, text: &str| {
        STANDARD
            .decode(text)
            .with_context(|| format!("{}: {field} is not base64", path.display()))
    };
    if path.exists() {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let stored: Stored = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a keys file", path.display()))?;
        let challenge = rsa::RsaPrivateKey::from_pkcs8_der(&decode(
            "challenge_key_pkcs8",
            &stored.challenge_key_pkcs8,
        )?)
        .map_err(|err| anyhow::anyhow!("{}: challenge key: {err}", path.display()))?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&decode(
            "signer_key_pkcs8",
            &stored.signer_key_pkcs8,
        )?)
        .map_err(|err| anyhow::anyhow!("{}: signer key: {err}", path.display()))?;
        let chain_der = stored
            .chain_der
            .iter()
            .map(|der| decode("chain_der", der))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let signer = Signer {
            key,
            chain_der,
            chain_pem: stored.chain_pem,
            ca_pem: stored.ca_pem,
        };
        return Ok((challenge, signer));
    }
    let challenge = challenge_key()?;
    let signer = signer()?;
    let stored = Stored {
        challenge_key_pkcs8: STANDARD.encode(
            challenge
                .to_pkcs8_der()
                .map_err(|err| anyhow::anyhow!("challenge key encoding: {err}"))?
                .as_bytes(),
        ),
        signer_key_pkcs8: STANDARD.encode(
            signer
                .key
                .to_pkcs8_der()
                .map_err(|err| anyhow::anyhow!("signer key encoding: {err}"))?
                .as_bytes(),
        ),
        chain_der: signer
            .chain_der
            .iter()
            .map(|der| STANDARD.encode(der))
            .collect(),
        chain_pem: signer.chain_pem.clone(),
        ca_pem: signer.ca_pem.clone(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(&stored)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((challenge, signer))
}

impl Signer {
    /// Writes `ca.pem` (the trust anchor for `trusted_certs_paths`) and `chain.pem` (what
    /// `/certificate` serves) into `dir`.
    pub fn write_files(&self, dir: &Path) -> anyhow::Result<WrittenFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let files = WrittenFiles {
            ca: dir.join("ca.pem"),
            chain: dir.join("chain.pem"),
        };
        std::fs::write(&files.ca, &self.ca_pem)
            .with_context(|| format!("cannot write {}", files.ca.display()))?;
        std::fs::write(&files.chain, &self.chain_pem)
            .with_context(|| format!("cannot write {}", files.chain.display()))?;
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_keys_come_back_identical() {
        let dir = std::env::temp_dir().join(format!(
            "tng-devkit-keys-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("keys.json");
        let (challenge, signer) = load_or_create(&path).expect("create");
        assert!(path.is_file());
        let (challenge2, signer2) = load_or_create(&path).expect("load");
        assert_eq!(challenge, challenge2);
        assert_eq!(signer.key, signer2.key);
        assert_eq!(signer.chain_der, signer2.chain_der);
        assert_eq!(signer.chain_pem, signer2.chain_pem);
        assert_eq!(signer.ca_pem, signer2.ca_pem);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
