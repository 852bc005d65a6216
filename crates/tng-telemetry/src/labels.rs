//! Every label value a series can carry: fixed enums or strings taken from the configuration
//! once, never request data, so the number of series is bounded by the configuration.

/// Which side of the tunnel an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// How an instance carries traffic through the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Ohttp,
    RatsTls,
    /// The UDP modes (attested QUIC).
    Quic,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ohttp => "ohttp",
            Transport::RatsTls => "rats_tls",
            Transport::Quic => "quic",
        }
    }
}

/// The addresses upstream shows in an entry's attributes (observability spec §2.2), fixed when
/// the entry is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// `mapping`, `mapping_udp` and egress `hook`: `{dir}_in` and `{dir}_out`
    /// (`host:port`, first rule only).
    InOut { listen: String, upstream: String },
    /// `http_proxy`, `socks5`, ingress `hook`: `{dir}_proxy_listen`.
    ProxyListen(String),
    /// `netfilter`: `{dir}_listen_port`.
    ListenPort(u16),
}

/// What identifies an ingress or egress entry in every series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLabels {
    /// The capture mode as upstream names it: `mapping`, `http_proxy`, `socks5`, `netfilter`,
    /// `hook`, `mapping_udp`.
    pub mode: String,
    pub transport: Transport,
    pub endpoints: Endpoints,
}

/// An HTTP status folded to its class; `None` is a request that ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    None,
}

impl StatusClass {
    pub(crate) const ALL: [StatusClass; 6] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::None,
    ];

    pub(crate) fn of(status: Option<u16>) -> StatusClass {
        match status {
            Some(100..=199) => StatusClass::Informational,
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirection,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            _ => StatusClass::None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::None => "none",
        }
    }
}

/// Why a remote attestation verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationFailure {
    /// The evidence or token could not be parsed or its signature did not verify.
    InvalidEvidence,
    /// The Attestation Service (or local verifier) rejected it under the policy.
    PolicyRejected,
    /// The evidence was valid but not bound to the key or session it came with.
    BindingMismatch,
    /// The token had expired (or was not yet valid).
    Expired,
    /// The Attestation Service or Agent could not be reached or answered with an error.
    ServiceUnavailable,
    Other,
}

impl AttestationFailure {
    pub(crate) const ALL: [AttestationFailure; 6] = [
        AttestationFailure::InvalidEvidence,
        AttestationFailure::PolicyRejected,
        AttestationFailure::BindingMismatch,
        AttestationFailure::Expired,
        AttestationFailure::ServiceUnavailable,
        AttestationFailure::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttestationFailure::InvalidEvidence => "invalid_evidence",
            AttestationFailure::PolicyRejected => "policy_rejected",
            AttestationFailure::BindingMismatch => "binding_mismatch",
            AttestationFailure::Expired => "expired",
            AttestationFailure::ServiceUnavailable => "service_unavailable",
            AttestationFailure::Other => "other",
        }
    }
}

/// The outcome of one attestation verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attestation {
    Verified,
    Failed(AttestationFailure),
}

/// A limit that refused or cut a connection or request; label values are the `limits` field
/// names of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxHeaderBytes,
    MaxHeaders,
    HeaderReadTimeout,
    IdleTimeout,
    MaxConnections,
    MaxConcurrentStreams,
    MaxMetadataBytes,
    MaxChunkBytes,
    BodyReadTimeout,
    ResponseTimeout,
}

impl Limit {
    pub(crate) const ALL: [Limit; 10] = [
        Limit::MaxHeaderBytes,
        Limit::MaxHeaders,
        Limit::HeaderReadTimeout,
        Limit::IdleTimeout,
        Limit::MaxConnections,
        Limit::MaxConcurrentStreams,
        Limit::MaxMetadataBytes,
        Limit::MaxChunkBytes,
        Limit::BodyReadTimeout,
        Limit::ResponseTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxHeaderBytes => "max_header_bytes",
            Limit::MaxHeaders => "max_headers",
            Limit::HeaderReadTimeout => "header_read_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::MaxConnections => "max_connections",
            Limit::MaxConcurrentStreams => "max_concurrent_streams",
            Limit::MaxMetadataBytes => "max_metadata_bytes",
            Limit::MaxChunkBytes => "max_chunk_bytes",
            Limit::BodyReadTimeout => "body_read_timeout",
            Limit::ResponseTimeout => "response_timeout",
        }
    }
}
