//! TLS configurations of both roles and the attestation check run after each handshake.

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// The framing inside TLS, as ALPN names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Raw,
    H2,
}

impl Framing {
    pub fn from_multiplex(multiplex: bool) -> Self {
        if multiplex {
            Framing::H2
        } else {
            Framing::Raw
        }
    }

    pub fn alpn(self) -> &'static [u8] {
        match self {
            Framing::Raw => b"rats-tls",
            Framing::H2 => b"h2",
        }
    }

    /// What the egress serves after the handshake: `h2` is HTTP/2, anything else (no ALPN
    /// included: a non-TNG client) the raw byte stream, as upstream dispatches.
    pub fn negotiated(alpn: Option<&[u8]>) -> Self {
        if alpn == Some(b"h2") {
            Framing::H2
        } else {
            Framing::Raw
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The ingress's side of TLS.
pub struct ClientSecurity {
    pub config: Arc<ClientConfig>,
    framing: Framing,
}

impl ClientSecurity {
    pub async fn new(
        config: &tng_config::Ingress,
        framing: Framing,
        _so_mark: Option<u32>,
        field: &str,
    ) -> anyhow::Result<Self> {
        if config.ra.attest.is_some() || config.ra.verify.is_some() {
            anyhow::bail!("{field}: attestation over rats_tls is not available in this build");
        }
        let provider = provider();
        let mut tls = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SignatureOnly(provider)))
            .with_no_client_auth();
        tls.alpn_protocols = vec![framing.alpn().to_vec()];
        tls.enable_early_data = false;
        Ok(Self {
            config: Arc::new(tls),
            framing,
        })
    }

    /// Raw framing: the endpoint's DNS name, or no SNI for an IP literal (rustls sends none
    /// for an IP server name); multiplexed: the constant authority of every stream.
    pub fn server_name(&self, host: &str) -> ServerName<'static> {
        let host = match self.framing {
            Framing::Raw => host,
            Framing::H2 => super::H2_AUTHORITY,
        };
        ServerName::try_from(host.to_string())
            .unwrap_or_else(|_| ServerName::try_from(super::H2_AUTHORITY).expect("a DNS name"))
    }

    /// Checks the egress's attestation; nothing to check without `verify`.
    pub async fn verify_peer(&self, _conn: &rustls::ClientConnection) -> Result<(), String> {
        Ok(())
    }
}

/// The egress's side of TLS.
pub struct ServerSecurity {
    pub config: Arc<ServerConfig>,
}

impl ServerSecurity {
    pub async fn new(
        config: &tng_config::Egress,
        framing: Framing,
        _so_mark: Option<u32>,
        field: &str,
    ) -> anyhow::Result<Self> {
        if config.ra.attest.is_some() || config.ra.verify.is_some() {
            anyhow::bail!("{field}: attestation over rats_tls is not available in this build");
        }
        let certified = rcgen::generate_simple_self_signed(vec!["tng".to_owned()])?;
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let mut tls = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        tls.alpn_protocols = vec![framing.alpn().to_vec()];
        tls.max_early_data_size = 0;
        Ok(Self {
            config: Arc::new(tls),
        })
    }

    pub async fn verify_peer(&self, _conn: &rustls::ServerConnection) -> Result<(), String> {
        Ok(())
    }
}

/// Accepts any certificate but still checks the handshake signatures: attestation, checked
/// after the handshake, is what authenticates the peer.
#[derive(Debug)]
struct SignatureOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
