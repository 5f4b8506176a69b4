//! Outcome events: what became of each request, as OSS/BSS read it on `intent-outcomes`.
//!
//! This is a public contract. Events are keyed by the idempotency key, so all events of a
//! request land on one partition in order; `event_id` is a pure function of the key, the
//! stage and the place (topic, partition, offset) of the message whose processing the
//! event belongs to: an event published again for a redelivery of that message (after a
//! crash or rebalance) has the id it had, while a later processing of the same key (a new
//! message: sent again after its dedup entry expired, or after a `failed`) has new ids.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decode::{IdempotencyKey, KeySource};
use crate::message::SourceRef;
use crate::request::MessageType;
use crate::translate::TranslatorKind;

/// The lifecycle stages of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Received,
    Duplicate,
    Translated,
    Applied,
    Deployed,
    Failed,
    Rejected,
    DeadLettered,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Received,
        Stage::Duplicate,
        Stage::Translated,
        Stage::Applied,
        Stage::Deployed,
        Stage::Failed,
        Stage::Rejected,
        Stage::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Duplicate => "duplicate",
            Stage::Translated => "translated",
            Stage::Applied => "applied",
            Stage::Deployed => "deployed",
            Stage::Failed => "failed",
            Stage::Rejected => "rejected",
            Stage::DeadLettered => "dead_lettered",
        }
    }

    /// Whether this stage ends the processing of a message: exactly one of these follows
    /// `received` for every consumed message.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Stage::Applied | Stage::Duplicate | Stage::Rejected | Stage::Failed
        )
    }
}

/// Machine-readable reasons for `rejected` and `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is empty or not JSON.
    InvalidJson,
    /// JSON, but not the shape of a service request or network event.
    InvalidSchema,
    /// A JSON object that is neither a service request nor a network event.
    UnknownMessageType,
    /// A service request without usable intent text.
    EmptyIntent,
    /// An idempotency key (header, CloudEvents pair or payload field) that is given but
    /// unusable: empty, not UTF-8, longer than 256 bytes, holding a control or Unicode
    /// format character, a key header without a value or present twice, one of
    /// `ce_source`/`ce_id` without the other ([`crate::decode`]).
    InvalidIdempotencyKey,
    /// The translator could not map the request to an intent.
    Untranslatable,
    /// The translated intent broke a limit (allowlist, bounds, names, markup).
    InvalidIntent,
    /// The intent could not be applied (the sink failed after retries).
    ApplyFailed,
    /// The record itself is unusable before its payload is read: a header name that is
    /// not UTF-8, holds a NUL or another control or format character, or is over 256
    /// bytes; more than 64 headers; a header value over 16 KiB; a record key over 4 KiB;
    /// no value at all (a tombstone); or a `content-type` it does not read. The limits are the `MAX_*` constants of
    /// [`crate::decode`]; the message names the header (index and escaped name) or the
    /// limit.
    InvalidRecord,
    /// The intent is outside the configured policy (namespaces, replica and resource
    /// bounds, parameter allowlist); the message names the rule and the field.
    PolicyDenied,
    /// The idempotency key was first claimed by a message with a different payload.
    IdempotencyKeyConflict,
    /// The intent's target namespace does not exist in the cluster (`INTENT_SINK=kube`
    /// without `CREATE_NAMESPACES=true`).
    NamespaceNotFound,
    /// The operator could not deploy an intent the service applied: its status phase
    /// turned `Failed` (the message is the status message). Not `apply_failed`: the
    /// service did its part; what failed is downstream of it ([`crate::lifecycle`]).
    DeployFailed,
    /// A Confluent-framed Avro payload names a schema id the registry does not know.
    UnknownSchemaId,
    /// A single-object Avro payload's fingerprint is none of the schemas in `schemas/`.
    UnknownSchemaFingerprint,
    /// An Avro payload that does not decode with its writer schema: a body cut short, a
    /// value that breaks the schema, a writer schema that cannot be read as the request.
    InvalidAvro,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidSchema,
        ErrorCode::UnknownMessageType,
        ErrorCode::EmptyIntent,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::Untranslatable,
        ErrorCode::InvalidIntent,
        ErrorCode::ApplyFailed,
        ErrorCode::InvalidRecord,
        ErrorCode::PolicyDenied,
        ErrorCode::IdempotencyKeyConflict,
        ErrorCode::NamespaceNotFound,
        ErrorCode::DeployFailed,
        ErrorCode::UnknownSchemaId,
        ErrorCode::UnknownSchemaFingerprint,
        ErrorCode::InvalidAvro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidSchema => "invalid_schema",
            ErrorCode::UnknownMessageType => "unknown_message_type",
            ErrorCode::EmptyIntent => "empty_intent",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::Untranslatable => "untranslatable",
            ErrorCode::InvalidIntent => "invalid_intent",
            ErrorCode::ApplyFailed => "apply_failed",
            ErrorCode::InvalidRecord => "invalid_record",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::IdempotencyKeyConflict => "idempotency_key_conflict",
            ErrorCode::NamespaceNotFound => "namespace_not_found",
            ErrorCode::DeployFailed => "deploy_failed",
            ErrorCode::UnknownSchemaId => "unknown_schema_id",
            ErrorCode::UnknownSchemaFingerprint => "unknown_schema_fingerprint",
            ErrorCode::InvalidAvro => "invalid_avro",
        }
    }
}

/// Why a message was rejected or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

/// Longest `message` a failure carries, in bytes: it goes into outcome events, dead-letter
/// headers and logs, and may quote hostile input, so it must never be what makes a record
/// too large to send.
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 1024;

impl Failure {
    /// A failure whose message is cut to [`MAX_FAILURE_MESSAGE_BYTES`] (on a character
    /// boundary, ending in `…` when cut).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_FAILURE_MESSAGE_BYTES {
            let mut end = MAX_FAILURE_MESSAGE_BYTES - '…'.len_utf8();
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self { code, message }
    }
}

/// The NetworkIntent an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IntentRef {
    pub name: String,
    pub namespace: String,
}

/// What a `duplicate` refers to: the terminal outcome of the first message with the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentRef>,
    pub source: SourceRef,
}

/// One lifecycle event, as published (JSON) on the outcomes topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEvent {
    pub event_id: String,
    pub idempotency_key: String,
    /// `derived` when the producer gave no key and the service hashed the message.
    pub key_source: KeySource,
    pub stage: Stage,
    /// Absent when the payload could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentRef>,
    pub source: SourceRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translator: Option<TranslatorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// On a `duplicate`: the outcome of the message that first carried the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Original>,
    /// RFC 3339, UTC.
    pub occurred_at: String,
}

impl OutcomeEvent {
    /// A bare event of `stage` for the message at `source`; callers add the details.
    pub fn new(key: &IdempotencyKey, stage: Stage, source: &SourceRef) -> Self {
        Self {
            event_id: event_id(&key.value, stage, source),
            idempotency_key: key.value.clone(),
            key_source: key.source,
            stage,
            message_type: None,
            intent: None,
            source: source.clone(),
            translator: None,
            error: None,
            original: None,
            occurred_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// The deterministic id of a lifecycle event the operator's status causes (`deployed`,
/// `failed`) for one generation of the intent: a generation is deployed (or fails) once,
/// and a later spec change is a new generation with events of its own.
pub fn generation_event_id(idempotency_key: &str, stage: Stage, generation: i64) -> String {
    uuid_of(&[
        idempotency_key.as_bytes(),
        stage.as_str().as_bytes(),
        generation.to_string().as_bytes(),
    ])
}

/// The deterministic id of an event: the same stage of the processing of the message at
/// `source` always gets the same id (a redelivery of the message is the same processing),
/// and another message with the key (a new processing, or a `duplicate`) gets ids of its
/// own. Formatted as a UUID (version 8, "custom") so consumers can store it as one.
pub fn event_id(idempotency_key: &str, stage: Stage, source: &SourceRef) -> String {
    uuid_of(&[
        idempotency_key.as_bytes(),
        stage.as_str().as_bytes(),
        source.topic.as_bytes(),
        source.partition.to_string().as_bytes(),
        source.offset.to_string().as_bytes(),
    ])
}

/// SHA-256 of the parts, NUL-separated, as a version 8 UUID.
fn uuid_of(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0]);
        }
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = crate::hex::lower_hex(&b);
    let mut id = String::with_capacity(36);
    for (i, group) in [0..8, 8..12, 12..16, 16..20, 20..32]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            id.push('-');
        }
        id.push_str(&hex[group]);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> SourceRef {
        SourceRef {
            topic: "service-requests".into(),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn event_ids_are_deterministic_per_processing_and_stage() {
        let a = event_id("order-1", Stage::Applied, &at(5));
        assert_eq!(a, event_id("order-1", Stage::Applied, &at(5)));
        assert_ne!(a, event_id("order-1", Stage::Received, &at(5)));
        assert_ne!(a, event_id("order-2", Stage::Applied, &at(5)));
        // the same key processed again from another message
        assert_ne!(a, event_id("order-1", Stage::Applied, &at(6)));
        let elsewhere = SourceRef {
            partition: 1,
            ..at(5)
        };
        assert_ne!(a, event_id("order-1", Stage::Applied, &elsewhere));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        let d = generation_event_id("order-1", Stage::Deployed, 1);
        assert_eq!(d, generation_event_id("order-1", Stage::Deployed, 1));
        assert_ne!(d, generation_event_id("order-1", Stage::Deployed, 2));
        assert_ne!(d, generation_event_id("order-1", Stage::Failed, 1));
        assert_ne!(d, event_id("order-1", Stage::Deployed, &at(1)));
    }

    #[test]
    fn failure_messages_are_bounded() {
        let long = Failure::new(ErrorCode::InvalidJson, "é".repeat(5000));
        assert!(long.message.len() <= MAX_FAILURE_MESSAGE_BYTES);
        assert!(long.message.ends_with('…'));
        let short = Failure::new(ErrorCode::InvalidJson, "short");
        assert_eq!(short.message, "short");
    }

    #[test]
    fn stage_names_match_serde() {
        for stage in Stage::ALL {
            assert_eq!(
                serde_json::to_value(stage).unwrap(),
                serde_json::json!(stage.as_str())
            );
        }
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }
}
