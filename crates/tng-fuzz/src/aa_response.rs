//! What the gateway reads from the Attestation Agent. The ttrpc framing and the protobuf
//! decoding are third-party code (`ttrpc`, `protobuf`) that our client calls; this drives
//! them exactly as the client's reader does (frame header + payload, `Response` with status,
//! then the typed message) and then our own handling: the empty-evidence check, the TEE-name
//! parser, the evidence wrapper, and the ASR's `/info` JSON.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use protobuf::Message as _;
use tng_attest::aa::proto::{GetEvidenceResponse, GetTeeTypeResponse};
use tng_attest::aa::tee::parse_tee;
use tng_attest::CocoEvidence;
use ttrpc::proto::{GenMessage, MESSAGE_TYPE_RESPONSE};

/// More frames than one call's answer; the rest of a long input is left alone.
const MAX_FRAMES: usize = 8;

/// Input: bytes from the AA socket (ttrpc frames). The same bytes are also read as a bare
/// response payload and as an ASR `/info` body, so seeds of each kind are useful.
pub fn aa_response(data: &[u8]) {
    frames(data);
    tee_type_payload(data);
    evidence_payload(data);
    asr_info(data);
}

fn frames(data: &[u8]) {
    let mut reader = data;
    for _ in 0..MAX_FRAMES {
        // A byte slice never blocks, so the read finishes on its first poll.
        let Poll::Ready(Ok(frame)) = poll_once(GenMessage::read_from(&mut reader)) else {
            return;
        };
        if frame.header.type_ != MESSAGE_TYPE_RESPONSE {
            continue;
        }
        let Ok(response) = ttrpc::Response::parse_from_bytes(&frame.payload) else {
            continue;
        };
        if let Some(status) = response.status.as_ref() {
            if status.code.value() != ttrpc::Code::OK as i32 {
                // What `AaClient` puts into its error message.
                let _ = format!("{:?}: {}", status.code(), status.message());
                continue;
            }
        }
        tee_type_payload(&response.payload);
        evidence_payload(&response.payload);
    }
}

fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut context = Context::from_waker(Waker::noop());
    pin!(future).poll(&mut context)
}

fn tee_type_payload(payload: &[u8]) {
    if let Ok(response) = GetTeeTypeResponse::parse_from_bytes(payload) {
        if let Some(tee) = parse_tee(&response.tee) {
            assert_eq!(parse_tee(&tee).as_deref(), Some(tee.as_str()));
        }
    }
}

fn evidence_payload(payload: &[u8]) {
    let Ok(response) = GetEvidenceResponse::parse_from_bytes(payload) else {
        return;
    };
    if response.Evidence.is_empty() {
        return;
    }
    // The wrapper must give the peer back exactly the AA's bytes.
    let wrapped = CocoEvidence::new("sample", &response.Evidence, None, "{}".into());
    assert_eq!(
        wrapped.evidence_bytes().as_deref(),
        Ok(response.Evidence.as_slice())
    );
}

fn asr_info(body: &[u8]) {
    let Ok(info) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    if let Some(tee) = info.get("tee").and_then(serde_json::Value::as_str) {
        let _ = parse_tee(tee);
    }
}
