//! TLS on a listener (`add_egress[].ohttp.tls`): a certificate and key from files, read again
//! whenever either file changes, so a renewed certificate (cert-manager, a mounted secret that
//! is swapped by symlink) takes effect without a restart. A pair that does not load leaves the
//! previous one serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::shutdown::Shutdown;

/// How often the files are looked at. A stat per file; renewals are rare, so a few seconds of
/// delay cost nothing.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A TLS acceptor whose certificate follows its files.
pub struct ReloadingTls {
    acceptor: TlsAcceptor,
}

impl ReloadingTls {
    /// Loads the pair (a failure names `field`) and watches the files until `shutdown`.
    pub fn start(
        field: &str,
        tls: &tng_config::ServerTls,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let files = Files {
            cert: tls.cert_file.clone(),
            key: tls.key_file.clone(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = files
            .load(&provider)
            .with_context(|| format!("{field}: cannot use the certificate and key"))?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio::spawn(watch(files, provider, current, shutdown));
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn load(&self, provider: &rustls::crypto::CryptoProvider) -> anyhow::Result<CertifiedKey> {
        let cert_pem = std::fs::read(&self.cert)
            .with_context(|| format!("cannot read {}", self.cert.display()))?;
        let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("invalid PEM certificate in {}", self.cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("no PEM certificate in {}", self.cert.display());
        }
        let key_pem = std::fs::read(&self.key)
            .with_context(|| format!("cannot read {}", self.key.display()))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .with_context(|| format!("invalid PEM private key in {}", self.key.display()))?
            .with_context(|| format!("no PEM private key in {}", self.key.display()))?;
        CertifiedKey::from_der(certs, key, provider).with_context(|| {
            format!(
                "the key in {} does not belong to the certificate in {}",
                self.key.display(),
                self.cert.display()
            )
        })
    }

    /// What changes when either file is replaced, in place or by a symlink swap.
    fn stamp(&self) -> Option<(Stamp, Stamp)> {
        Some((stamp(&self.cert)?, stamp(&self.key)?))
    }
}

type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

async fn watch(
    files: Files,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: Arc<Current>,
    mut shutdown: Shutdown,
) {
    let mut seen = files.stamp();
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let now = files.stamp();
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        match files.load(&provider) {
            Ok(key) => {
                *current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            // Logged once per change: the next change is tried again.
            Err(err) => warn!(
                cert = %files.cert.display(),
                "TLS certificate not reloaded, the previous one stays in use: {err:#}"
            ),
        }
    }
}
