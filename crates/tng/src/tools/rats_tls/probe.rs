//! One TLS handshake with a rats-TLS endpoint, to keep the certificate it presents. No
//! application byte is sent: the connection closes right after the handshake.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;

use crate::transport::rats_tls::security::{self, Framing};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Captured {
    pub der: CertificateDer<'static>,
    /// The framing the endpoint accepted: raw (`rats_tls.multiplex: false`) first, as
    /// upstream's dump offers, then multiplexed when the endpoint refuses the ALPN.
    pub framing: Framing,
}

pub async fn peer_certificate(
    host: &str,
    port: u16,
    resolver: Option<Arc<dyn ResolvesClientCert>>,
) -> anyhow::Result<Captured> {
    match handshake(host, port, Framing::Raw, resolver.clone()).await {
        Err(err) if refused_alpn(&err) => handshake(host, port, Framing::H2, resolver)
            .await
            .context("the endpoint refused ALPN rats-tls, and h2 too"),
        other => other,
    }
}

async fn handshake(
    host: &str,
    port: u16,
    framing: Framing,
    resolver: Option<Arc<dyn ResolvesClientCert>>,
) -> anyhow::Result<Captured> {
    let config = security::client_config(&security::provider(), framing, resolver)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .context("not a valid host name")?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .context("cannot connect")?;
        connector
            .connect(name, tcp)
            .await
            .map_err(anyhow::Error::from)
            .context("TLS handshake failed")
    };
    let tls = tokio::time::timeout(TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow::anyhow!("no TLS handshake within {TIMEOUT:?}"))??;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned())
        .context("the endpoint presented no certificate")?;
    Ok(Captured { der, framing })
}

fn refused_alpn(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let tls = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        matches!(
            tls,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            ))
        )
    })
}
