//! TLS configurations of both roles and the attestation check run after each handshake.
//!
//! | side, RA config | certificate presented | certificate requested |
//! |---|---|---|
//! | egress `attest` | attested ([`CertManager`]) | — |
//! | egress `verify` | attested if `attest`, else a throwaway self-signed one | mandatory client certificate |
//! | ingress `attest` | attested client certificate, when the egress asks | — |
//! | ingress `verify` | — | (the server's, always) |
//!
//! Handshake-time checks are the TLS signatures only ([`SignatureOnly`], [`AnyClientCert`]):
//! the peer's certificate is authenticated by its attestation, which `verify_peer` checks
//! right after the handshake, before the ingress sends or the egress forwards a single
//! application byte.
//!
//! Session resumption is disabled on both sides (no tickets, no session cache, no PSK
//! offered): a resumed handshake carries no certificate, so it would be trusted on a past
//! verification whose attestation may have expired since. Every connection does a full
//! handshake and is verified; the verdict cache keeps that cheap. Without tickets there is no
//! 0-RTT either; the egress also sets `max_early_data_size = 0`, so a 2.10+ upstream ingress
//! offering early data falls back to a full 1-RTT handshake.

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use tng_ratstls::{CertManager, FixedCert, PeerVerifier};
use tng_telemetry::{Attestation, AttestationFailure, InstanceMetrics};
use tracing::debug;

/// The framing inside TLS, as ALPN names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Raw,
    H2,
    /// The UDP modes: datagrams over QUIC; the certificates and checks are the same.
    Quic,
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
            Framing::Quic => b"rats-quic",
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

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The attesting and verifying halves of one side, from its `attest` / `verify`.
struct Roles {
    attester: Option<Arc<CertManager>>,
    verifier: Option<Arc<PeerVerifier>>,
    /// Verifications of the peer are counted here (cached verdicts are not verifications).
    metrics: InstanceMetrics,
}

impl Roles {
    async fn new(
        ra: &tng_config::Ra,
        provider: &Arc<CryptoProvider>,
        so_mark: Option<u32>,
        field: &str,
        metrics: InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let attester = match &ra.attest {
            Some(attest) => {
                let attester = crate::attestation::attester(field, attest, so_mark)?;
                Some(
                    CertManager::start(attester, provider.clone())
                        .await
                        .with_context(|| format!("{field}.attest"))?,
                )
            }
            None => None,
        };
        let verifier = match &ra.verify {
            Some(verify) => {
                let verifier = crate::attestation::verifier(field, verify, so_mark).await?;
                Some(PeerVerifier::new(
                    verifier,
                    provider.signature_verification_algorithms,
                ))
            }
            None => None,
        };
        Ok(Self {
            attester,
            verifier,
            metrics,
        })
    }

    /// `refresh_interval: 0`: a certificate (hence a TLS configuration) per handshake.
    fn per_handshake(&self) -> bool {
        self.attester.as_ref().is_some_and(|m| m.per_handshake())
    }

    /// The certificate for one handshake when it cannot be the shared one.
    async fn fresh(&self) -> Result<Arc<CertifiedKey>, String> {
        let manager = self.attester.as_ref().ok_or("no attester")?;
        manager
            .fresh()
            .await
            .map_err(|e| format!("cannot make an attested certificate: {e}"))
    }

    /// Checks the peer's end-entity certificate; nothing to check without `verify`.
    async fn verify_peer(&self, certificates: Option<&[CertificateDer<'_>]>) -> Result<(), String> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let Some(leaf) = certificates.and_then(|c| c.first()) else {
            self.metrics
                .attestation(Attestation::Failed(AttestationFailure::InvalidEvidence));
            return Err(tng_ratstls::Error::NoCertificate.to_string());
        };
        let verdict = match verifier.verify(leaf).await {
            Ok(verdict) => verdict,
            Err(err) => {
                let reason = crate::attestation::peer_failure_of(&err);
                self.metrics.attestation(Attestation::Failed(reason));
                return Err(err.to_string());
            }
        };
        if !verdict.cached {
            self.metrics.attestation(Attestation::Verified);
        }
        debug!(
            pubkey_hash = %verdict.pubkey_hash,
            cached = verdict.cached,
            "peer attestation accepted"
        );
        Ok(())
    }
}

/// The ingress's side of TLS.
pub struct ClientSecurity {
    config: Arc<ClientConfig>,
    provider: Arc<CryptoProvider>,
    framing: Framing,
    roles: Roles,
}

impl ClientSecurity {
    pub async fn new(
        config: &tng_config::Ingress,
        framing: Framing,
        so_mark: Option<u32>,
        field: &str,
        metrics: InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let provider = provider();
        let roles = Roles::new(&config.ra, &provider, so_mark, field, metrics).await?;
        let resolver = roles
            .attester
            .clone()
            .map(|m| m as Arc<dyn ResolvesClientCert>);
        let tls = client_config(&provider, framing, resolver)?;
        Ok(Self {
            config: Arc::new(tls),
            provider,
            framing,
            roles,
        })
    }

    /// The framing this side offers (its ALPN).
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The connector for one handshake.
    pub async fn connector(&self) -> Result<tokio_rustls::TlsConnector, String> {
        Ok(self.tls_config().await?.into())
    }

    /// The TLS configuration for one handshake (shared unless every handshake needs a fresh
    /// certificate).
    pub async fn tls_config(&self) -> Result<Arc<ClientConfig>, String> {
        if !self.roles.per_handshake() {
            return Ok(self.config.clone());
        }
        let certified = self.roles.fresh().await?;
        let config = client_config(
            &self.provider,
            self.framing,
            Some(Arc::new(FixedCert(certified))),
        )
        .map_err(|e| e.to_string())?;
        Ok(Arc::new(config))
    }

    /// Checks the egress's attestation from its certificate chain (QUIC hands the chain over
    /// instead of a rustls connection).
    pub async fn verify_certificates(
        &self,
        certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<(), String> {
        self.roles.verify_peer(certificates).await
    }

    /// Raw framing: the endpoint's DNS name, or no SNI for an IP literal (rustls sends none
    /// for an IP server name); multiplexed: the constant authority of every stream.
    pub fn server_name(&self, host: &str) -> ServerName<'static> {
        let host = match self.framing {
            Framing::Raw | Framing::Quic => host,
            Framing::H2 => super::H2_AUTHORITY,
        };
        ServerName::try_from(host.to_string())
            .unwrap_or_else(|_| ServerName::try_from(super::H2_AUTHORITY).expect("a DNS name"))
    }

    /// Whether the egress's attestation is checked (`verify`).
    pub fn verifies(&self) -> bool {
        self.roles.verifier.is_some()
    }

    /// Checks the egress's attestation (with `verify`); the reason when it is refused.
    pub async fn verify_peer(&self, conn: &rustls::ClientConnection) -> Result<(), String> {
        self.roles.verify_peer(conn.peer_certificates()).await
    }
}

/// The ingress's TLS configuration: TLS 1.3 only, the peer's certificate checked for its
/// self-signature here and for its attestation after the handshake, no resumption, no early data.
pub fn client_config(
    provider: &Arc<CryptoProvider>,
    framing: Framing,
    resolver: Option<Arc<dyn ResolvesClientCert>>,
) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SignatureOnly(provider.clone())));
    let mut tls = match resolver {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![framing.alpn().to_vec()];
    tls.enable_early_data = false;
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(tls)
}

/// The egress's side of TLS.
pub struct ServerSecurity {
    config: Arc<ServerConfig>,
    provider: Arc<CryptoProvider>,
    framing: Framing,
    roles: Roles,
}

impl ServerSecurity {
    pub async fn new(
        config: &tng_config::Egress,
        framing: Framing,
        so_mark: Option<u32>,
        field: &str,
        metrics: InstanceMetrics,
    ) -> anyhow::Result<Self> {
        let provider = provider();
        let roles = Roles::new(&config.ra, &provider, so_mark, field, metrics).await?;
        let resolver: Arc<dyn ResolvesServerCert> = match &roles.attester {
            Some(manager) => manager.clone(),
            None => Arc::new(FixedCert(throwaway_certificate(&provider)?)),
        };
        let tls = server_config(&provider, framing, resolver, roles.verifier.is_some())?;
        Ok(Self {
            config: Arc::new(tls),
            provider,
            framing,
            roles,
        })
    }

    /// The framing this side accepts (its ALPN).
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The acceptor for one handshake.
    pub async fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        Ok(self.tls_config().await?.into())
    }

    /// The TLS configuration for one handshake (shared unless every handshake needs a fresh
    /// certificate).
    pub async fn tls_config(&self) -> Result<Arc<ServerConfig>, String> {
        if !self.roles.per_handshake() {
            return Ok(self.config.clone());
        }
        let certified = self.roles.fresh().await?;
        let config = server_config(
            &self.provider,
            self.framing,
            Arc::new(FixedCert(certified)),
            self.roles.verifier.is_some(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Arc::new(config))
    }

    /// Checks the ingress's attestation from its certificate chain (QUIC).
    pub async fn verify_certificates(
        &self,
        certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<(), String> {
        self.roles.verify_peer(certificates).await
    }

    /// Whether the ingress's attestation is checked (`verify`).
    pub fn verifies(&self) -> bool {
        self.roles.verifier.is_some()
    }

    /// Checks the ingress's attestation (with `verify`); the reason when it is refused.
    pub async fn verify_peer(&self, conn: &rustls::ServerConnection) -> Result<(), String> {
        self.roles.verify_peer(conn.peer_certificates()).await
    }
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    framing: Framing,
    resolver: Arc<dyn ResolvesServerCert>,
    request_client_cert: bool,
) -> anyhow::Result<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = if request_client_cert {
        builder.with_client_cert_verifier(Arc::new(AnyClientCert(provider.clone())))
    } else {
        builder.with_no_client_auth()
    };
    let mut tls = builder.with_cert_resolver(resolver);
    tls.alpn_protocols = vec![framing.alpn().to_vec()];
    tls.max_early_data_size = 0;
    tls.send_tls13_tickets = 0;
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(tls)
}

/// The certificate of an egress without `attest`: any self-signed one does, peers only check
/// the handshake signature made with its key.
fn throwaway_certificate(provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
    let certified = rcgen::generate_simple_self_signed(vec!["tng".to_owned()])?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let signing = provider.key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
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

/// The egress's client-certificate check with `verify`: a certificate is mandatory (none ⇒
/// alert `certificate_required`, as upstream), no CA names are sent, any certificate is
/// accepted at handshake time and only its CertificateVerify signature is checked.
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
