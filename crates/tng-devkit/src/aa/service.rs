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
    /// `--wrong-report-data`: evidence bound to other runtime data than requested.
    pub wrong_report_data: bool,
}

/// Makes `runtime_data` differ from what was asked for (first byte inverted; a lone zero byte
/// when empty).
fn tamper(runtime_data: &mut Vec<u8>) {
    match runtime_data.first_mut() {
        Some(first) => *first = !*first,
        None => runtime_data.push(0),
    }
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
        let mut runtime_data = req.RuntimeData;
        if self.wrong_report_data {
            tamper(&mut runtime_data);
            tracing::warn!("--wrong-report-data: evidence is bound to other runtime data");
        }
        response.Evidence = sample_evidence(&runtime_data, &self.register);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_always_changes_the_runtime_data() {
        let mut data = vec![0x0f, 1, 2];
        tamper(&mut data);
        assert_eq!(data, [0xf0, 1, 2]);
        let mut empty = Vec::new();
        tamper(&mut empty);
        assert_eq!(empty, [0]);
    }
}
