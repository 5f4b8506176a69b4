//! The two request types producers send, as they appear on the wire (JSON today).
//!
//! Decoding is lenient about extra fields (producers may add them) and strict about the
//! fields it reads: a wrong type is an error that names the field. Whether a request can
//! be acted upon is the translator's decision, not the decoder's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::intent::ParamValue;

/// A request from OSS/BSS or a pipeline, in natural language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// What the requester wants, e.g. "Deploy AMF with 3 replicas in namespace core5g".
    pub intent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, ParamValue>>,
}

impl ServiceRequest {
    /// A request with only its text: what a producer must send at the least.
    pub fn new(intent: impl Into<String>) -> Self {
        Self {
            idempotency_key: None,
            intent: intent.into(),
            target_namespace: None,
            target_environment: None,
            priority: None,
            requester: None,
            parameters: None,
        }
    }
}

/// An event from network monitoring: an alarm, a KPI crossing a threshold, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// e.g. `kpi_threshold_crossed`, `alarm`.
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The network function type the event is about, e.g. `amf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// A decoded request of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Service(ServiceRequest),
    Event(NetworkEvent),
}

impl Request {
    /// The idempotency key the payload itself carries, if any.
    pub fn payload_key(&self) -> Option<&str> {
        match self {
            Request::Service(r) => r.idempotency_key.as_deref(),
            Request::Event(e) => e.event_id.as_deref(),
        }
        .filter(|k| !k.trim().is_empty())
    }

    pub fn message_type(&self) -> MessageType {
        match self {
            Request::Service(_) => MessageType::ServiceRequest,
            Request::Event(_) => MessageType::NetworkEvent,
        }
    }
}

/// The kind of a request, as outcome events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    ServiceRequest,
    NetworkEvent,
}
