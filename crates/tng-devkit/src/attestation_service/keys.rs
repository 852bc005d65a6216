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
