//! The Attestation Agent ttrpc client (`aa_addr: unix:///...`).

use std::time::Duration;

use tokio::sync::Mutex;

use super::proto::{
    AttestationAgentServiceClient, GetAdditionalEvidenceRequest, GetEvidenceRequest,
    GetTeeTypeRequest,
};
use super::{tee, AaError, RawEvidence};

/// TNG's per-call ttrpc timeout.
pub const TTRPC_TIMEOUT: Duration = Duration::from_secs(50);

/// A client of the Attestation Agent's ttrpc API. The connection is made on first use and
/// re-made after a transport failure (an AA restart does not wedge the gateway).
pub struct AaClient {
    addr: String,
    client: Mutex<Option<AttestationAgentServiceClient>>,
    timeout: Duration,
}

impl std::fmt::Debug for AaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AaClient")
            .field("addr", &self.addr)
            .finish()
    }
}

enum Call {
    Evidence,
    TeeType,
    Additional,
}

impl AaClient {
    /// `aa_addr` must be `unix:///absolute/path`. Does not connect yet.
    pub fn new(aa_addr: &str) -> Result<Self, AaError> {
        if !aa_addr.starts_with("unix:///") {
            return Err(AaError::InvalidAddress(aa_addr.to_owned()));
        }
        Ok(Self {
            addr: aa_addr.to_owned(),
            client: Mutex::new(None),
            timeout: TTRPC_TIMEOUT,
        })
    }

    /// The socket path (`aa_addr` without `unix://`).
    pub fn socket_path(&self) -> &str {
        &self.addr["unix://".len()..]
    }

    /// Connects now (a no-op when already connected).
    pub async fn connect(&self) -> Result<(), AaError> {
        self.client().await.map(|_| ())
    }

    async fn client(&self) -> Result<AttestationAgentServiceClient, AaError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let inner = ttrpc::r#async::Client::connect(&self.addr)
            .await
            .map_err(|e| AaError::Connect {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })?;
        let client = AttestationAgentServiceClient::new(inner);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn forget_connection(&self) {
        *self.client.lock().await = None;
    }

    fn context(&self) -> ttrpc::context::Context {
        ttrpc::context::with_duration(self.timeout)
    }

    /// `GetEvidence(RuntimeData)` → the AA's evidence bytes.
    pub async fn get_evidence(&self, runtime_data: &[u8]) -> Result<Vec<u8>, AaError> {
        let client = self.client().await?;
        let request = GetEvidenceRequest {
            RuntimeData: runtime_data.to_vec(),
            ..Default::default()
        };
        match client.get_evidence(self.context(), &request).await {
            Ok(response) if response.Evidence.is_empty() => Err(AaError::GetEvidence(
                "the Attestation Agent returned empty evidence".into(),
            )),
            Ok(response) => Ok(response.Evidence),
            Err(e) => Err(self.failed(Call::Evidence, e).await),
        }
    }

    /// `GetTeeType()` → the kbs-types name of the TEE.
    pub async fn get_tee_type(&self) -> Result<String, AaError> {
        let client = self.client().await?;
        let request = GetTeeTypeRequest::default();
        match client.get_tee_type(self.context(), &request).await {
            Ok(response) => tee::parse_tee(&response.tee).ok_or(AaError::UnknownTee(response.tee)),
            Err(e) => Err(self.failed(Call::TeeType, e).await),
        }
    }

    /// `GetAdditionalEvidence(RuntimeData)` → the bytes (possibly empty).
    pub async fn get_additional_evidence(&self, runtime_data: &[u8]) -> Result<Vec<u8>, AaError> {
        let client = self.client().await?;
        let request = GetAdditionalEvidenceRequest {
            RuntimeData: runtime_data.to_vec(),
            ..Default::default()
        };
        match client
            .get_additional_evidence(self.context(), &request)
            .await
        {
            Ok(response) => Ok(response.Evidence),
            Err(e) => Err(self.failed(Call::Additional, e).await),
        }
    }

    /// `GetEvidence(digest)`, `GetTeeType()`, `GetAdditionalEvidence(empty)`, in that order;
    /// a failing or empty additional evidence only logs a warning.
    pub(crate) async fn collect(&self, digest: &[u8]) -> Result<RawEvidence, AaError> {
        let evidence = match self.get_evidence(digest).await {
            // A kept connection to an AA that restarted fails its first call; the failure
            // dropped it, so one retry goes out on a fresh connection.
            Err(_) if self.client.lock().await.is_none() => self.get_evidence(digest).await?,
            result => result?,
        };
        let tee = self.get_tee_type().await?;
        let additional = match self.get_additional_evidence(&[]).await {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "no additional evidence from the Attestation Agent");
                None
            }
        };
        Ok(RawEvidence {
            tee,
            evidence,
            additional,
        })
    }

    /// Maps a ttrpc error; a transport failure also drops the connection for a reconnect.
    async fn failed(&self, call: Call, error: ttrpc::Error) -> AaError {
        let reason = match &error {
            ttrpc::Error::RpcStatus(status) => {
                format!("{:?}: {}", status.code(), status.message())
            }
            other => {
                self.forget_connection().await;
                format!("{other} (Attestation Agent at {})", self.addr)
            }
        };
        match call {
            Call::Evidence => AaError::GetEvidence(reason),
            Call::TeeType => AaError::GetTeeType(reason),
            Call::Additional => AaError::GetAdditionalEvidence(reason),
        }
    }
}
