//! Decoding: record bytes and headers become a typed [`Request`] and its idempotency key.
//!
//! A message always leaves here with a key, even when its payload is garbage, so that
//! its `rejected` outcome can be keyed and correlated like any other.
//!
//! First the record itself is screened, before anything in it is read as text: a record
//! key over [`MAX_RECORD_KEY_BYTES`], more than [`MAX_HEADERS`] headers, a header name
//! that is not UTF-8, holds a NUL or another control or format character, or is over
//! [`MAX_HEADER_NAME_BYTES`], a header value over [`MAX_HEADER_VALUE_BYTES`], or no value
//! at all (a tombstone) make it `invalid_record`. Such a record claims no key.
//!
//! Then the key is resolved in the order the design fixes: the `idempotency-key` header,
//! the CloudEvents binary headers (`ce_source` + `ce_id`), the payload's own key field,
//! and last a hash of the topic and the payload bytes. Header names match byte for byte.
//! A key that is given but unusable (a header without a value, twice the same key
//! header, not UTF-8, empty, over [`MAX_KEY_BYTES`], or holding a control or Unicode
//! format character such as ESC, NUL, a newline, a bidi override or a zero-width space)
//! is `invalid_idempotency_key`, never replaced by a derived one: the hash is only the
//! key of a record that gives none at all. A message that claims no key is keyed by a
//! hash of where it was read ([`correlation_key`]), a correlation id that no other record
//! shares. Every key that comes out is printable text, safe in logs, annotations and
//! headers.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::avro::read::WriterSchemas;
use crate::avro::registry::Registry;
use crate::message::InboundMessage;
use crate::outcome::{ErrorCode, Failure};
use crate::request::{NetworkEvent, Request, ServiceRequest};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The CloudEvents binary-mode headers (Kafka protocol binding) that key a message
/// together, as `ce_source/ce_id`.
pub const CE_SOURCE_HEADER: &str = "ce_source";
pub const CE_ID_HEADER: &str = "ce_id";

/// Longest idempotency key, in bytes (after trimming). Keys name intents and key
/// outcome events; 256 bytes is far more than any real identifier.
pub const MAX_KEY_BYTES: usize = 256;
/// Most headers a record may carry. Producers add a handful (a key, CloudEvents
/// attributes, tracing); past this the record is refused as `invalid_record`.
pub const MAX_HEADERS: usize = 64;
/// Longest header name, in bytes; a longer one is refused as `invalid_record`.
pub const MAX_HEADER_NAME_BYTES: usize = 256;
/// Largest header value, in bytes (16 KiB: room for tracing baggage); a larger one is
/// refused as `invalid_record`.
pub const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;
/// Largest Kafka record key, in bytes. The record key only places a message on a
/// partition and in an ordering lane; a larger one is refused as `invalid_record`.
pub const MAX_RECORD_KEY_BYTES: usize = 4 * 1024;
/// How much of a hostile name or key is quoted in a failure message.
const QUOTED_BYTES: usize = 48;

/// A message's idempotency key and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub value: String,
    pub source: KeySource,
}

/// Where an idempotency key came from; `derived` means the producer gave none, or gave
/// an unusable one and the key is only a correlation id.
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

/// Decodes a message. Never fails as a whole: a bad record, key or payload is a
/// [`Failure`] beside a key. A Confluent-framed Avro value is read without a registry
/// (`unknown_schema_id`): see [`decode_with`].
pub fn decode(message: &InboundMessage) -> Decoded {
    decode_with(message, &WriterSchemas::default())
}

/// Decodes a message whose Confluent-framed Avro value (if it is one) finds its writer
/// schema in `schemas`.
pub fn decode_with(message: &InboundMessage, schemas: &WriterSchemas<'_>) -> Decoded {
    let fingerprint = fingerprint(message.payload.as_deref());
    let unclaimed = |failure: Failure| Decoded {
        key: correlation_key(message),
        request: Err(failure),
        fingerprint,
        claims_key: false,
    };
    let payload = match screen_record(message) {
        Ok(payload) => payload,
        Err(failure) => return unclaimed(failure),
    };
    let header_key = match key_from_headers(message) {
        Ok(key) => key,
        Err(failure) => return unclaimed(failure),
    };
    let request = read_request(payload, schemas);
    let key = match (header_key, &request) {
        (Some(key), _) => key,
        (None, Ok(request)) => match given_payload_key(request) {
            Some((field, value)) => {
                match key_text(&format!("the payload's {field:?} field"), value.as_bytes()) {
                    Ok(value) => IdempotencyKey {
                        value,
                        source: KeySource::Payload,
                    },
                    Err(failure) => return unclaimed(failure),
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
        // A tombstone never gets here: the record screen refuses it, claiming nothing.
        claims_key: true,
    }
}

/// Screens the record as a whole, before any of it is read as text; returns its value.
fn screen_record(message: &InboundMessage) -> Result<&[u8], Failure> {
    let refuse = |why: String| Err(Failure::new(ErrorCode::InvalidRecord, why));
    if let Some(key) = &message.key {
        if key.len() > MAX_RECORD_KEY_BYTES {
            return refuse(format!(
                "the record key is {} bytes long; the limit is {MAX_RECORD_KEY_BYTES}",
                key.len()
            ));
        }
    }
    if message.headers.len() > MAX_HEADERS {
        return refuse(format!(
            "the record has {} headers; the limit is {MAX_HEADERS}",
            message.headers.len()
        ));
    }
    for (index, (name, value)) in message.headers.iter().enumerate() {
        let at = || format!("header #{index} (name {})", quote(name));
        if name.len() > MAX_HEADER_NAME_BYTES {
            return refuse(format!(
                "{}: the name is {} bytes long; the limit is {MAX_HEADER_NAME_BYTES}",
                at(),
                name.len()
            ));
        }
        let text = match std::str::from_utf8(name) {
            Ok(text) => text,
            Err(e) => {
                return refuse(format!(
                    "{}: the name is not UTF-8 (invalid byte at {})",
                    at(),
                    e.valid_up_to()
                ))
            }
        };
        if let Some((at_byte, c)) = text.char_indices().find(|&(_, c)| is_forbidden(c)) {
            return refuse(format!(
                "{}: the name holds {} at byte {at_byte}",
                at(),
                describe_char(c)
            ));
        }
        if let Some(value) = value {
            if value.len() > MAX_HEADER_VALUE_BYTES {
                return refuse(format!(
                    "{}: the value is {} bytes long; the limit is {MAX_HEADER_VALUE_BYTES}",
                    at(),
                    value.len()
                ));
            }
        }
    }
    match &message.payload {
        Some(payload) => Ok(payload),
        None => refuse(
            "the record has no value (a tombstone, null value): there is no request in it"
                .to_string(),
        ),
    }
}

/// The key the headers give, if they give one; a key header that is present but
/// unusable is a failure, never skipped.
fn key_from_headers(message: &InboundMessage) -> Result<Option<IdempotencyKey>, Failure> {
    if let Some(value) = single_header(message, IDEMPOTENCY_KEY_HEADER)? {
        return Ok(Some(IdempotencyKey {
            value: key_text(&format!("header {IDEMPOTENCY_KEY_HEADER:?}"), value)?,
            source: KeySource::Header,
        }));
    }
    let source = single_header(message, CE_SOURCE_HEADER)?;
    let id = single_header(message, CE_ID_HEADER)?;
    if let (Some(source), Some(id)) = (source, id) {
        let value = format!(
            "{}/{}",
            key_text(&format!("header {CE_SOURCE_HEADER:?}"), source)?,
            key_text(&format!("header {CE_ID_HEADER:?}"), id)?
        );
        if value.len() > MAX_KEY_BYTES {
            return Err(Failure::new(
                ErrorCode::InvalidIdempotencyKey,
                format!("{CE_SOURCE_HEADER}/{CE_ID_HEADER} is longer than {MAX_KEY_BYTES} bytes"),
            ));
        }
        return Ok(Some(IdempotencyKey {
            value,
            source: KeySource::Cloudevents,
        }));
    }
    Ok(None)
}

/// The value of the one header called `name`, if there is one. Twice the same key header
/// is ambiguous (readers disagree on which one counts), and one without a value gives
/// no key: both are failures.
fn single_header<'m>(message: &'m InboundMessage, name: &str) -> Result<Option<&'m [u8]>, Failure> {
    let bad = |why: String| {
        Failure::new(
            ErrorCode::InvalidIdempotencyKey,
            format!("header {name:?} {why}"),
        )
    };
    let mut found = message.headers_named(name);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    let more = found.count();
    if more > 0 {
        return Err(bad(format!(
            "appears {} times; a record may carry it once",
            more + 1
        )));
    }
    first
        .map(Some)
        .ok_or_else(|| bad("has no value (null)".to_string()))
}

/// The key field a request gives, named, even when it is blank (a key given blank is
/// unusable, not absent).
fn given_payload_key(request: &Request) -> Option<(&'static str, &str)> {
    match request {
        Request::Service(r) => r.idempotency_key.as_deref().map(|k| ("idempotency_key", k)),
        Request::Event(e) => e.event_id.as_deref().map(|k| ("event_id", k)),
    }
}

/// A key's text: UTF-8, trimmed, not empty, at most [`MAX_KEY_BYTES`], and printable
/// (no control or format character).
fn key_text(what: &str, value: &[u8]) -> Result<String, Failure> {
    let bad = |why: String| Failure::new(ErrorCode::InvalidIdempotencyKey, format!("{what} {why}"));
    let text = std::str::from_utf8(value).map_err(|e| {
        bad(format!(
            "is not UTF-8 (invalid byte at {}): {}",
            e.valid_up_to(),
            quote(value)
        ))
    })?;
    // Before trimming: a newline or tab at either end is refused, not trimmed away.
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| is_forbidden(c)) {
        return Err(bad(format!(
            "holds {} at byte {at}: {}",
            describe_char(c),
            quote(value)
        )));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("is empty".to_string()));
    }
    if text.len() > MAX_KEY_BYTES {
        return Err(bad(format!(
            "is {} bytes long; the limit is {MAX_KEY_BYTES}",
            text.len()
        )));
    }
    Ok(text.to_string())
}

/// A character no key or header name may hold: a control character (C0, DEL, C1: NUL,
/// ESC, newline, ...), a line or paragraph separator, or a Unicode format character
/// (general category Cf: bidi overrides and isolates, zero-width characters, the byte
/// order mark, ...), which can forge log lines or make two different keys look alike.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format(c)
}

/// Unicode general category Cf (format characters), as of Unicode 15.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

fn describe_char(c: char) -> String {
    let kind = match c {
        '\0' => "a NUL",
        c if c.is_control() => "the control character",
        _ => "the format character",
    };
    format!("{kind} U+{:04X}", u32::from(c))
}

/// Hostile bytes, quoted for a message: printable ASCII with everything else escaped,
/// cut to [`QUOTED_BYTES`], and their hex.
fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTED_BYTES)];
    let more = if shown.len() < bytes.len() { "…" } else { "" };
    format!(
        "\"{}\"{more} (hex {}{more})",
        shown.escape_ascii(),
        crate::hex::lower_hex(shown)
    )
}

/// The key of last resort: the same bytes on the same topic always get the same key, so
/// a producer retry of a key-less message still deduplicates.
fn derived_key(message: &InboundMessage) -> IdempotencyKey {
    let mut hasher = Sha256::new();
    hasher.update(message.source.topic.as_bytes());
    hasher.update([0]);
    hasher.update(message.payload.as_deref().unwrap_or_default());
    derived(&hasher.finalize())
}

/// The key of a message that claims none (a bad record or an unusable key): a hash of
/// where it was read, so the same record always gets the same one (its outcome events
/// keep their ids on redelivery) and no two records share it (unlike a hash of the
/// payload, the same for every tombstone). It is only a correlation id.
pub fn correlation_key(message: &InboundMessage) -> IdempotencyKey {
    let mut hasher = Sha256::new();
    hasher.update(b"record\0");
    hasher.update(message.source.topic.as_bytes());
    hasher.update([0]);
    hasher.update(message.source.partition.to_be_bytes());
    hasher.update(message.source.offset.to_be_bytes());
    derived(&hasher.finalize())
}

fn derived(digest: &[u8]) -> IdempotencyKey {
    IdempotencyKey {
        value: format!("sha256:{}", crate::hex::lower_hex(&digest[..16])),
        source: KeySource::Derived,
    }
}

/// The schema id a message's value needs from the registry before it can be decoded:
/// a usable record whose value is Confluent-framed Avro with an id not in the registry's
/// cache. `None` without a registry (the record is then `unknown_schema_id`).
pub fn needs_writer_schema(message: &InboundMessage, registry: Option<&Registry>) -> Option<u32> {
    let registry = registry?;
    let id = crate::avro::frame::confluent_schema_id(screen_record(message).ok()?)?;
    registry.cached(id).is_none().then_some(id)
}

/// The request in a payload: Avro-framed values ([`crate::avro`]) are read into the JSON
/// value the same request would have been, and both go through the same shape rules.
fn read_request(payload: &[u8], schemas: &WriterSchemas<'_>) -> Result<Request, Failure> {
    match crate::avro::read::read(payload, schemas) {
        Some(value) => shape(value?),
        None => parse(payload),
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
    shape(value)
}

/// A payload's value as a request, by the shape rules every format shares.
fn shape(value: serde_json::Value) -> Result<Request, Failure> {
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
                .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
                .collect(),
            timestamp_ms: None,
        }
    }

    const GOOD: &str = r#"{"intent":"Deploy AMF in namespace core5g"}"#;

    /// A good payload with these raw headers.
    fn with_headers(headers: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> InboundMessage {
        InboundMessage {
            headers,
            ..message(GOOD, &[])
        }
    }

    /// Rejected with `code`, claiming no key, keyed by a correlation id; the message
    /// holds every `needle`.
    fn refused(d: &Decoded, code: ErrorCode, needles: &[&str]) {
        let failure = d.request.as_ref().expect_err("should be refused");
        assert_eq!(failure.code, code, "{}", failure.message);
        for needle in needles {
            assert!(
                failure.message.contains(needle),
                "{needle:?} not in {:?}",
                failure.message
            );
        }
        assert!(!d.claims_key);
        assert_eq!(d.key.source, KeySource::Derived);
        assert!(d.key.value.starts_with("sha256:"));
        assert!(
            !failure.message.chars().any(is_forbidden),
            "the message itself is printable: {:?}",
            failure.message
        );
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
    fn a_single_object_avro_request_decodes_as_its_json_twin() {
        use crate::avro::schemas::SERVICE_REQUEST;
        let json = serde_json::json!({"idempotency_key": "order-1", "intent": "Deploy AMF", "priority": "high"});
        let value = apache_avro::types::Value::Record(vec![
            (
                "idempotency_key".into(),
                apache_avro::types::Value::Union(1, Box::new("order-1".into())),
            ),
            ("intent".into(), "Deploy AMF".into()),
            (
                "target_namespace".into(),
                apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
            ),
            (
                "target_environment".into(),
                apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
            ),
            (
                "priority".into(),
                apache_avro::types::Value::Union(1, Box::new("high".into())),
            ),
            (
                "requester".into(),
                apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
            ),
            (
                "parameters".into(),
                apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
            ),
        ]);
        let mut payload = vec![0xC3, 0x01];
        payload.extend_from_slice(&SERVICE_REQUEST.fingerprint);
        payload.extend(
            apache_avro::writer::datum::GenericDatumWriter::builder(&SERVICE_REQUEST.schema)
                .build()
                .and_then(|w| w.write_value_to_vec(value))
                .expect("written"),
        );
        let mut avro = message("", &[]);
        avro.payload = Some(payload.clone());
        let from_avro = decode(&avro);
        let from_json = decode(&message(&json.to_string(), &[]));
        assert_eq!(from_avro.request, from_json.request);
        assert_eq!(from_avro.key, from_json.key);
        assert_eq!(from_avro.key.source, KeySource::Payload);
        // Claimed with the digest of the whole value, framing included.
        assert_eq!(from_avro.fingerprint, fingerprint(Some(&payload)));
        // A binary-mode CloudEvent's data may be Avro: keyed by its headers.
        let mut event = message("", &[("ce_source", "oss"), ("ce_id", "7")]);
        event.payload = Some(payload.clone());
        let d = decode(&event);
        assert_eq!(d.request, from_json.request);
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("oss/7", KeySource::Cloudevents)
        );
        // Confluent framing without a registry: the id cannot be resolved.
        avro.payload = Some(vec![0, 0, 0, 0, 7, 2]);
        let d = decode(&avro);
        assert_eq!(code(&d), ErrorCode::UnknownSchemaId);
        assert!(d.claims_key);
        assert_eq!(needs_writer_schema(&avro, None), None);
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

    #[test]
    fn a_header_name_that_is_not_utf8_is_an_invalid_record() {
        let d = decode(&with_headers(vec![
            (b"trace".to_vec(), Some(b"1".to_vec())),
            (vec![0xFF, 0xFE, b'x'], Some(b"v".to_vec())),
        ]));
        refused(
            &d,
            ErrorCode::InvalidRecord,
            &["header #1", r#""\xff\xfex""#, "hex fffe78", "not UTF-8"],
        );
    }

    #[test]
    fn a_nul_or_control_character_in_a_header_name_is_an_invalid_record() {
        let d = decode(&with_headers(vec![(
            b"idempotency-key\0x".to_vec(),
            Some(b"forged".to_vec()),
        )]));
        refused(
            &d,
            ErrorCode::InvalidRecord,
            &[
                "header #0",
                r#""idempotency-key\x00x""#,
                "a NUL U+0000 at byte 15",
            ],
        );
        let d = decode(&with_headers(vec![(b"trace\x1b[2J".to_vec(), None)]));
        refused(&d, ErrorCode::InvalidRecord, &["control character U+001B"]);
        let d = decode(&with_headers(vec![(
            "idempotency\u{200B}-key".as_bytes().to_vec(),
            Some(b"k".to_vec()),
        )]));
        refused(&d, ErrorCode::InvalidRecord, &["format character U+200B"]);
    }

    #[test]
    fn too_many_headers_is_an_invalid_record() {
        let at_limit = (0..MAX_HEADERS)
            .map(|i| (format!("h{i}").into_bytes(), None))
            .collect::<Vec<_>>();
        assert!(decode(&with_headers(at_limit.clone())).request.is_ok());
        let mut over = at_limit;
        over.push((b"one-more".to_vec(), None));
        refused(
            &decode(&with_headers(over)),
            ErrorCode::InvalidRecord,
            &["65 headers", "limit is 64"],
        );
    }

    #[test]
    fn oversized_header_names_and_values_are_invalid_records() {
        let name = vec![b'n'; MAX_HEADER_NAME_BYTES + 1];
        refused(
            &decode(&with_headers(vec![(name, None)])),
            ErrorCode::InvalidRecord,
            &["header #0", "257 bytes", "limit is 256", "nnnn"],
        );
        let value = vec![b'v'; MAX_HEADER_VALUE_BYTES + 1];
        refused(
            &decode(&with_headers(vec![(b"trace".to_vec(), Some(value))])),
            ErrorCode::InvalidRecord,
            &[
                "header #0",
                r#""trace""#,
                "value is 16385 bytes",
                "limit is 16384",
            ],
        );
        let at_limit = vec![b'v'; MAX_HEADER_VALUE_BYTES];
        assert!(
            decode(&with_headers(vec![(b"trace".to_vec(), Some(at_limit))]))
                .request
                .is_ok()
        );
    }

    #[test]
    fn an_oversized_record_key_is_an_invalid_record() {
        let mut m = message("not json", &[("idempotency-key", "k")]);
        m.key = Some(vec![b'k'; 1_000_000]);
        refused(
            &decode(&m),
            ErrorCode::InvalidRecord,
            &["record key is 1000000 bytes", "limit is 4096"],
        );
        m.key = Some(vec![b'k'; MAX_RECORD_KEY_BYTES]);
        assert_eq!(decode(&m).key.value, "k");
    }

    #[test]
    fn a_tombstone_is_an_invalid_record_with_a_key_of_its_own() {
        let mut m = message(GOOD, &[("idempotency-key", "k")]);
        m.payload = None;
        let d = decode(&m);
        refused(&d, ErrorCode::InvalidRecord, &["no value", "tombstone"]);
        // Two tombstones never share a key (nor, then, outcome event ids).
        m.source.offset += 1;
        assert_ne!(decode(&m).key, d.key);
        // The same record read again does.
        m.source.offset -= 1;
        assert_eq!(decode(&m).key, d.key);
        // An empty value is a value: not JSON.
        m.payload = Some(Vec::new());
        assert_eq!(code(&decode(&m)), ErrorCode::InvalidJson);
    }

    #[test]
    fn header_names_match_exactly() {
        let d = decode(&with_headers(vec![(
            b"Idempotency-Key".to_vec(),
            Some(b"other".to_vec()),
        )]));
        assert_eq!(d.key.source, KeySource::Derived);
        assert!(d.claims_key);
        let d = decode(&with_headers(vec![(
            b"idempotency-key ".to_vec(),
            Some(b"other".to_vec()),
        )]));
        assert_eq!(d.key.source, KeySource::Derived);
    }

    #[test]
    fn keys_with_control_or_format_characters_are_refused() {
        for bad in [
            "k\u{1b}[31m",
            "k\0",
            "k\nINFO forged line",
            "k\n",
            "\tk",
            "k\u{7f}",
            "k\u{85}",
            "k\u{202E}gnp.exe",
            "k\u{200B}",
            "k\u{2066}",
            "\u{FEFF}k",
            "k\u{2028}",
            "k\u{E0041}",
        ] {
            let d = decode(&message(GOOD, &[("idempotency-key", bad)]));
            refused(
                &d,
                ErrorCode::InvalidIdempotencyKey,
                &["idempotency-key", "U+"],
            );
            let d = decode(&message(GOOD, &[("ce_source", "oss"), ("ce_id", bad)]));
            refused(&d, ErrorCode::InvalidIdempotencyKey, &["ce_id", "U+"]);
            let body = serde_json::json!({"idempotency_key": bad, "intent": "Deploy AMF"});
            let d = decode(&message(&body.to_string(), &[]));
            refused(
                &d,
                ErrorCode::InvalidIdempotencyKey,
                &["idempotency_key", "U+"],
            );
            let body = serde_json::json!({"event_id": bad, "event_type": "alarm"});
            let d = decode(&message(&body.to_string(), &[]));
            refused(&d, ErrorCode::InvalidIdempotencyKey, &["event_id", "U+"]);
        }
        // Printable text, other scripts included, is a key.
        for good in ["order-1", "Ordre n° 5", "注文-7", "a b"] {
            let d = decode(&message(GOOD, &[("idempotency-key", good)]));
            assert_eq!(d.key.value, good);
            assert!(d.claims_key);
        }
    }

    #[test]
    fn a_key_given_but_unusable_is_never_replaced_by_a_derived_one() {
        // A key header without a value.
        let mut m = message(GOOD, &[]);
        m.headers = vec![(b"idempotency-key".to_vec(), None)];
        refused(&decode(&m), ErrorCode::InvalidIdempotencyKey, &["no value"]);
        m.headers = vec![
            (b"ce_source".to_vec(), None),
            (b"ce_id".to_vec(), Some(b"1".to_vec())),
        ];
        refused(
            &decode(&m),
            ErrorCode::InvalidIdempotencyKey,
            &["ce_source", "no value"],
        );
        // Twice the key header, even with the same value.
        let d = decode(&message(
            GOOD,
            &[("idempotency-key", "a"), ("idempotency-key", "a")],
        ));
        refused(&d, ErrorCode::InvalidIdempotencyKey, &["appears 2 times"]);
        // Not UTF-8.
        m.headers = vec![(b"idempotency-key".to_vec(), Some(vec![b'k', 0xFF]))];
        refused(
            &decode(&m),
            ErrorCode::InvalidIdempotencyKey,
            &["not UTF-8", "hex 6bff"],
        );
        // A blank payload key is given, not absent.
        let d = decode(&message(
            r#"{"idempotency_key":"  ","intent":"Deploy AMF"}"#,
            &[],
        ));
        refused(&d, ErrorCode::InvalidIdempotencyKey, &["is empty"]);
        // Too long in the payload.
        let body = serde_json::json!({"idempotency_key": "k".repeat(257), "intent": "x"});
        refused(
            &decode(&message(&body.to_string(), &[])),
            ErrorCode::InvalidIdempotencyKey,
            &["257 bytes"],
        );
        // The correlation key of a bad-key message is not the derived key its corrected,
        // key-less re-send gets.
        let bad = decode(&message(GOOD, &[("idempotency-key", " ")]));
        let resent = decode(&message(GOOD, &[]));
        assert_ne!(bad.key, resent.key);
        assert!(resent.claims_key);
    }

    #[test]
    fn a_lone_cloudevents_header_is_not_a_key() {
        let d = decode(&message(
            r#"{"idempotency_key":"p","intent":"Deploy AMF"}"#,
            &[("ce_source", "oss")],
        ));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("p", KeySource::Payload)
        );
    }

    #[test]
    fn quotes_are_bounded_and_printable() {
        let q = quote(&[0xFF; 1000]);
        assert!(q.len() < 400, "{q}");
        assert!(q.contains('…'));
        assert_eq!(quote(b"a\"b\n"), r#""a\"b\n" (hex 6122620a)"#);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Header names drawn to hit the interesting cases: key headers, near misses,
        /// and arbitrary bytes.
        fn name() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                Just(b"idempotency-key".to_vec()),
                Just(b"ce_source".to_vec()),
                Just(b"ce_id".to_vec()),
                Just(b"idempotency-key\0x".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ]
        }

        fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
            proptest::option::of(prop_oneof![
                "[a-z0-9-]{1,20}".prop_map(String::into_bytes),
                any::<String>().prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..40),
            ])
        }

        fn record() -> impl Strategy<Value = InboundMessage> {
            (
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                proptest::option::of(prop_oneof![
                    Just(br#"{"intent":"Deploy AMF"}"#.to_vec()),
                    any::<String>().prop_map(|k| {
                        serde_json::json!({"idempotency_key": k, "intent": "Deploy AMF"})
                            .to_string()
                            .into_bytes()
                    }),
                    proptest::collection::vec(any::<u8>(), 0..200),
                ]),
                proptest::collection::vec((name(), value()), 0..8),
            )
                .prop_map(|(key, payload, headers)| InboundMessage {
                    key,
                    payload,
                    headers,
                    ..message("", &[])
                })
        }

        proptest! {
            /// Whatever the bytes: no panic, a printable key within bounds, and a
            /// message that claims a key only when the record is usable.
            #[test]
            fn any_record_decodes_to_a_printable_key(m in record()) {
                let d = decode(&m);
                prop_assert!(!d.key.value.is_empty());
                prop_assert!(d.key.value.len() <= MAX_KEY_BYTES.max(7 + 32));
                prop_assert!(!d.key.value.chars().any(is_forbidden), "{:?}", d.key.value);
                if let Err(failure) = &d.request {
                    prop_assert!(!failure.message.chars().any(char::is_control), "{:?}", failure.message);
                    if matches!(failure.code, ErrorCode::InvalidRecord | ErrorCode::InvalidIdempotencyKey) {
                        prop_assert!(!d.claims_key);
                    }
                }
                if m.payload.is_none() || m.headers.iter().any(|(n, _)| n.contains(&0)) {
                    prop_assert_eq!(
                        d.request.as_ref().err().map(|f| f.code),
                        Some(ErrorCode::InvalidRecord)
                    );
                }
            }
        }
    }
}
