//! RFC 9457 problem details, the error body the openanolis AS answers with.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn new(status: u16, code: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            code,
            title,
            detail,
        }
    }

    pub fn invalid_request(detail: String) -> Self {
        Self::new(400, "AS.REQUEST.INVALID", "Invalid request", detail)
    }

    pub fn unsupported_tee(tee: &str) -> Self {
        Self::new(
            400,
            "AS.REQUEST.UNSUPPORTED_TEE",
            "Unsupported TEE",
            format!("TEE {tee:?} is not supported by this attestation service"),
        )
    }

    pub fn invalid_challenge(detail: String) -> Self {
        Self::new(
            401,
            "AS.CHALLENGE.INVALID_TOKEN",
            "Invalid challenge token",
            detail,
        )
    }

    pub fn invalid_evidence(detail: String) -> Self {
        Self::new(
            422,
            "AS.EVIDENCE.INVALID",
            "Evidence verification failed",
            detail,
        )
    }

    pub fn binding_mismatch(detail: String) -> Self {
        Self::new(
            422,
            "AS.EVIDENCE.BINDING_MISMATCH",
            "Evidence is not bound to the runtime data",
            detail,
        )
    }

    pub fn policy_not_found(id: &str) -> Self {
        Self::new(
            404,
            "AS.POLICY.NOT_FOUND",
            "Policy not found",
            format!("no policy with id {id:?}"),
        )
    }

    pub fn policy_failed(detail: String) -> Self {
        Self::new(
            500,
            "AS.POLICY.EVALUATION_FAILED",
            "Policy evaluation failed",
            detail,
        )
    }

    pub fn body(&self) -> Value {
        json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "retryable": false,
        })
    }
}
