//! Decoding: message bytes and headers become a typed [`Request`] and its idempotency key.
//!
//! A message always leaves here with a key, even when its payload is garbage, so that
//! its `rejected` outcome can be keyed and correlated like any other. The key is resolved
//! in the order the design fixes: the `idempotency-key` header, the CloudEvents binary
//! headers (`ce_source` + `ce_id`), the payload's own key field, and last a hash of the
//! topic and the payload bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::message::InboundMessage;
use crate::outcome::{ErrorCode, Failure};
use crate::request::{NetworkEvent, Request, ServiceRequest};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
const MAX_KEY_BYTES: usize = 256;

/// A message's idempotency key and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub value: String,
    pub source: KeySource,
}

/// Where an idempotency key came from; `derived` means the producer gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    Header,
    Cloudevents,
    Payload,
    Derived,
}

/// The result of decoding one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub key: IdempotencyKey,
    pub request: Result<Request, Failure>,
    /// What the key is claimed with: a digest of the payload bytes. The same key with
    /// another payload is a conflict, not a duplicate.
    pub fingerprint: Fingerprint,
    /// False when the message must not claim its key in the dedup state: the key or the
    /// record itself is unusable (a bad key header, a bad record, a tombstone), so the
    /// key in its outcome is only a correlation id, and a corrected re-send must not be
    /// taken for a duplicate of it.
    pub claims_key: bool,
}

/// The first 8 bytes of the SHA-256 of a payload (an absent payload hashes as empty).
pub type Fingerprint = [u8; 8];

/// The fingerprint of a payload.
pub fn fingerprint(payload: Option<&[u8]>) -> Fingerprint {
    let digest = Sha256::digest(payload.unwrap_or_default());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Decodes a message. Never fails as a whole: a bad payload is a [`Failure`] beside a key.
pub fn decode(message: &InboundMessage) -> Decoded {
    let fingerprint = fingerprint(message.payload.as_deref());
    let header_key = match key_from_headers(message) {
        Ok(key) => key,
        Err(failure) => {
            return Decoded {
                key: derived_key(message),
                request: Err(failure),
                fingerprint,
                claims_key: false,
            }
        }
    };
    let request = parse(message.payload.as_deref().unwrap_or_default());
    let key = match (header_key, &request) {
        (Some(key), _) => key,
        (None, Ok(request)) => match request.payload_key() {
            Some(value) if value.len() <= MAX_KEY_BYTES => IdempotencyKey {
                value: value.to_string(),
                source: KeySource::Payload,
            },
            Some(value) => {
                return Decoded {
                    fingerprint,
                    claims_key: false,
                    key: derived_key(message),
                    request: Err(Failure::new(
                        ErrorCode::InvalidIdempotencyKey,
                        format!(
                        "the payload's key field is {} bytes long; the limit is {MAX_KEY_BYTES}",
                        value.len()
                    ),
                    )),
                }
            }
            None => derived_key(message),
        },
        (None, Err(_)) => derived_key(message),
    };
    Decoded {
        key,
        request,
        fingerprint,
        // A tombstone (no value) claims nothing: all of them would share one derived key.
        claims_key: message.payload.is_some(),
    }
}

fn key_from_headers(message: &InboundMessage) -> Result<Option<IdempotencyKey>, Failure> {
    if let Some(value) = message.header(IDEMPOTENCY_KEY_HEADER) {
        let value = header_text(IDEMPOTENCY_KEY_HEADER, value)?;
        return Ok(Some(IdempotencyKey {
            value,
            source: KeySource::Header,
        }));
    }
    if let (Some(source), Some(id)) = (message.header("ce_source"), message.header("ce_id")) {
        let value = format!(
            "{}/{}",
            header_text("ce_source", source)?,
            header_text("ce_id", id)?
        );
        if value.len() > MAX_KEY_BYTES {
            return Err(Failure::new(
                ErrorCode::InvalidIdempotencyKey,
                format!("ce_source/ce_id is longer than {MAX_KEY_BYTES} bytes"),
            ));
        }
        return Ok(Some(IdempotencyKey {
            value,
            source: KeySource::Cloudevents,
        }));
    }
    Ok(None)
}

fn header_text(name: &str, value: &[u8]) -> Result<String, Failure> {
    let bad = |why: &str| {
        Failure::new(
            ErrorCode::InvalidIdempotencyKey,
            format!("header {name:?} {why}"),
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| bad("is not UTF-8"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    if text.len() > MAX_KEY_BYTES {
        return Err(bad(&format!("is longer than {MAX_KEY_BYTES} bytes")));
    }
    Ok(text.to_string())
}

/// The key of last resort: the same bytes on the same topic always get the same key, so
/// a producer retry of a key-less message still deduplicates.
fn derived_key(message: &InboundMessage) -> IdempotencyKey {
    let mut hasher = Sha256::new();
    hasher.update(message.source.topic.as_bytes());
    hasher.update([0]);
    hasher.update(message.payload.as_deref().unwrap_or_default());
    let hex = crate::hex::lower_hex(&hasher.finalize()[..16]);
    IdempotencyKey {
        value: format!("sha256:{hex}"),
        source: KeySource::Derived,
    }
}

/// Parses a JSON payload; the object's fields say which request type it is (`intent` for
/// a service request, `event_type` for a network event), so topics can be renamed freely.
fn parse(payload: &[u8]) -> Result<Request, Failure> {
    if payload.is_empty() {
        return Err(Failure::new(ErrorCode::InvalidJson, "the payload is empty"));
    }
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidJson,
            format!("the payload is not JSON: {e}"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(Failure::new(
            ErrorCode::InvalidSchema,
            format!("the payload is a JSON {}, not an object", json_kind(&value)),
        ));
    };
    let shape_error = |kind: &str, e: serde_json::Error| {
        Failure::new(ErrorCode::InvalidSchema, format!("not a valid {kind}: {e}"))
    };
    match (object.contains_key("intent"), object.contains_key("event_type")) {
        (true, false) => {
            let request: ServiceRequest = serde_json::from_value(value)
                .map_err(|e| shape_error("service request", e))?;
            if request.intent.trim().is_empty() {
                return Err(Failure::new(
                    ErrorCode::EmptyIntent,
                    "the service request's \"intent\" text is empty",
                ));
            }
            Ok(Request::Service(request))
        }
        (false, true) => serde_json::from_value::<NetworkEvent>(value)
            .map(Request::Event)
            .map_err(|e| shape_error("network event", e)),
        (true, true) => Err(Failure::new(
            ErrorCode::UnknownMessageType,
            "the object has both \"intent\" (service request) and \"event_type\" (network event)",
        )),
        (false, false) => Err(Failure::new(
            ErrorCode::UnknownMessageType,
            "the object has neither \"intent\" (service request) nor \"event_type\" (network event)",
        )),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SourceRef;

    fn message(payload: &str, headers: &[(&str, &str)]) -> InboundMessage {
        InboundMessage {
            source: SourceRef {
                topic: "service-requests".into(),
                partition: 0,
                offset: 7,
            },
            key: None,
            payload: Some(payload.as_bytes().to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    fn code(d: &Decoded) -> ErrorCode {
        d.request.as_ref().expect_err("should fail").code
    }

    #[test]
    fn decodes_a_service_request_and_ignores_unknown_fields() {
        let d = decode(&message(
            r#"{"idempotency_key":"order-1","intent":"Deploy AMF","target_namespace":"core5g","extra":{"x":1}}"#,
            &[],
        ));
        assert_eq!(d.key.value, "order-1");
        assert_eq!(d.key.source, KeySource::Payload);
        let Ok(Request::Service(r)) = d.request else {
            panic!("not a service request")
        };
        assert_eq!(r.target_namespace.as_deref(), Some("core5g"));
    }

    #[test]
    fn decodes_a_network_event_keyed_by_event_id() {
        let d = decode(&message(
            r#"{"event_id":"ev-9","event_type":"kpi_threshold_crossed","nf_type":"amf","value":92.0}"#,
            &[],
        ));
        assert_eq!(d.key.value, "ev-9");
        assert!(matches!(d.request, Ok(Request::Event(_))));
    }

    #[test]
    fn key_resolution_order() {
        let body = r#"{"idempotency_key":"from-payload","intent":"Deploy AMF"}"#;
        let d = decode(&message(
            body,
            &[
                ("ce_source", "oss"),
                ("ce_id", "1"),
                ("idempotency-key", "from-header"),
            ],
        ));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("from-header", KeySource::Header)
        );
        let d = decode(&message(body, &[("ce_source", "oss"), ("ce_id", "1")]));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("oss/1", KeySource::Cloudevents)
        );
        let d = decode(&message(body, &[("ce_id", "1")]));
        assert_eq!(d.key.source, KeySource::Payload);
        let d = decode(&message(r#"{"intent":"Deploy AMF"}"#, &[]));
        assert_eq!(d.key.source, KeySource::Derived);
        assert!(d.key.value.starts_with("sha256:"));
        // the derived key is stable for the same bytes on the same topic
        assert_eq!(
            d.key,
            decode(&message(r#"{"intent":"Deploy AMF"}"#, &[])).key
        );
    }

    #[test]
    fn bad_payloads_get_specific_codes_and_still_a_key() {
        let d = decode(&message("not json", &[("idempotency-key", "k")]));
        assert_eq!(code(&d), ErrorCode::InvalidJson);
        assert_eq!(d.key.value, "k");
        assert_eq!(code(&decode(&message("", &[]))), ErrorCode::InvalidJson);
        assert_eq!(
            code(&decode(&message("[1,2]", &[]))),
            ErrorCode::InvalidSchema
        );
        assert_eq!(
            code(&decode(&message(r#"{"intent": 3}"#, &[]))),
            ErrorCode::InvalidSchema
        );
        assert_eq!(
            code(&decode(&message(r#"{"hello":"world"}"#, &[]))),
            ErrorCode::UnknownMessageType
        );
        assert_eq!(
            code(&decode(&message(r#"{"intent":"  "}"#, &[]))),
            ErrorCode::EmptyIntent
        );
        let d = decode(&message(
            r#"{"intent":"x","parameters":{"a":{"nested":1}}}"#,
            &[],
        ));
        assert_eq!(code(&d), ErrorCode::InvalidSchema);
    }

    #[test]
    fn bad_key_headers_are_rejected() {
        let d = decode(&message(
            r#"{"intent":"Deploy AMF"}"#,
            &[("idempotency-key", " ")],
        ));
        assert_eq!(code(&d), ErrorCode::InvalidIdempotencyKey);
        assert_eq!(d.key.source, KeySource::Derived);
        let long = "k".repeat(300);
        let d = decode(&message(
            r#"{"intent":"Deploy AMF"}"#,
            &[("idempotency-key", &long)],
        ));
        assert_eq!(code(&d), ErrorCode::InvalidIdempotencyKey);
    }
}
