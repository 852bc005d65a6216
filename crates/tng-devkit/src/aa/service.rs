//! The ttrpc `attestation_agent.AttestationAgentService` backed by the sample TEE.
//! Methods not overridden here keep the generated NOT_FOUND answer, as an AA without that
//! feature does.

use async_trait::async_trait;
use ttrpc::asynchronous::TtrpcContext;

use super::evidence::{sample_evidence, MeasureRegister, TEE_TYPE};
use super::proto::attestation_agent::{
    GetAdditionalEvidenceRequest, GetEvidenceRequest, GetEvidenceResponse, GetTeeTypeRequest,
    GetTeeTypeResponse,
};
use super::proto::attestation_agent_ttrpc::AttestationAgentService;

pub struct SampleAgent {
    pub register: MeasureRegister,
}

#[async_trait]
impl AttestationAgentService for SampleAgent {
    async fn get_evidence(
        &self,
        _ctx: &TtrpcContext,
        req: GetEvidenceRequest,
    ) -> ttrpc::Result<GetEvidenceResponse> {
        tracing::info!(
            "GetEvidence: {} bytes of runtime data",
            req.RuntimeData.len()
        );
        let mut response = GetEvidenceResponse::new();
        response.Evidence = sample_evidence(&req.RuntimeData, &self.register);
        Ok(response)
    }

    async fn get_tee_type(
        &self,
        _ctx: &TtrpcContext,
        _req: GetTeeTypeRequest,
    ) -> ttrpc::Result<GetTeeTypeResponse> {
        tracing::debug!("GetTeeType");
        let mut response = GetTeeTypeResponse::new();
        response.tee = TEE_TYPE.to_string();
        Ok(response)
    }

    /// The sample TEE has no extra devices; empty evidence means "none" to callers.
    async fn get_additional_evidence(
        &self,
        _ctx: &TtrpcContext,
        _req: GetAdditionalEvidenceRequest,
    ) -> ttrpc::Result<GetEvidenceResponse> {
        tracing::debug!("GetAdditionalEvidence");
        Ok(GetEvidenceResponse::new())
    }
}
