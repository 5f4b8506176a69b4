//! Decoding: record bytes and headers become a typed [`Request`] and its idempotency key.
//!
//! A message always leaves here with a key, even when its payload is garbage, so that
//! its `rejected` outcome can be keyed and correlated like any other.
//!
//! First the record itself is screened, before anything in it is read as text: a record
//! key over [`MAX_RECORD_KEY_BYTES`], more than [`MAX_HEADERS`] headers, a header name
//! that is not UTF-8, holds a NUL or another control or format character, or is over
//! [`MAX_HEADER_NAME_BYTES`], a header value over [`MAX_HEADER_VALUE_BYTES`], or no value
//! at all (a tombstone) make it `invalid_record`. Such a record claims no key. So does one
//! whose `content-type` this service does not read ([`content_type`]).
//!
//! The value is read as its content type says: a structured-mode CloudEvent
//! (`application/cloudevents+json`, [`cloudevents`]) is an envelope whose `data` is the
//! request; anything else is read by its bytes, as JSON. Either way the request is read
//! by the same rules ([`parse_value`]), and the fingerprint is the digest of the whole
//! value. A binary-mode CloudEvent (`ce_` headers) is a plain value with attribute
//! headers, checked by [`cloudevents::check_binary`].
//!
//! Then the key is resolved in the order the design fixes: the `idempotency-key` header,
//! the CloudEvents binary headers (`ce_source` + `ce_id`) or a structured envelope's
//! `source` + `id` (both as `<source>/<id>`), the payload's own key field, and last a
//! hash of the topic and the payload bytes. Header names match byte for byte.
//! A key that is given but unusable (a header without a value, twice the same key
//! header, one of `ce_source`/`ce_id` without the other, not UTF-8, empty, over
//! [`MAX_KEY_BYTES`], or holding a control or Unicode
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

mod cloudevents;
mod content_type;

use content_type::MediaType;
pub use content_type::CONTENT_TYPE_HEADER;

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
    /// How the value was read; `None` when the record was refused before that was known
    /// (`invalid_record`: its screen or its content type).
    pub format: Option<InputFormat>,
}

/// How a message's value is read, as its headers say: what
/// `messages_decoded_total{format}` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// A plain value (JSON), no CloudEvents headers.
    Json,
    /// Avro in the Confluent wire format (`00` and a schema id), no CloudEvents headers.
    AvroConfluent,
    /// Avro single-object encoding (`C3 01` and a fingerprint), no CloudEvents headers.
    AvroSingleObject,
    /// A structured-mode CloudEvent (`application/cloudevents+json`).
    CloudeventsStructured,
    /// A plain value with CloudEvents binary-mode headers (`ce_specversion`,
    /// `ce_source`, `ce_id`).
    CloudeventsBinary,
}

impl InputFormat {
    pub const ALL: [InputFormat; 5] = [
        InputFormat::Json,
        InputFormat::AvroConfluent,
        InputFormat::AvroSingleObject,
        InputFormat::CloudeventsStructured,
        InputFormat::CloudeventsBinary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Json => "json",
            InputFormat::AvroConfluent => "avro_confluent",
            InputFormat::AvroSingleObject => "avro_single_object",
            InputFormat::CloudeventsStructured => "cloudevents_structured",
            InputFormat::CloudeventsBinary => "cloudevents_binary",
        }
    }
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
    let refused = |failure: Failure, format: Option<InputFormat>| Decoded {
        key: correlation_key(message),
        request: Err(failure),
        fingerprint,
        claims_key: false,
        format,
    };
    let payload = match screen_record(message) {
        Ok(payload) => payload,
        Err(failure) => return refused(failure, None),
    };
    // The headers that say how to read the value and who keys it are judged before the
    // value: a record they refuse claims no key, so its corrected re-send (the same
    // bytes, better headers) is not taken for a duplicate of it.
    let media_type = match content_type::of_record(message) {
        Ok(media_type) => media_type,
        Err(failure) => return refused(failure, None),
    };
    let format = if media_type == Some(MediaType::CloudEventsJson) {
        InputFormat::CloudeventsStructured
    } else if [
        cloudevents::CE_SPECVERSION_HEADER,
        CE_SOURCE_HEADER,
        CE_ID_HEADER,
    ]
    .iter()
    .any(|name| message.headers_named(name).next().is_some())
    {
        InputFormat::CloudeventsBinary
    } else if payload.first() == Some(&crate::avro::frame::CONFLUENT_MAGIC) {
        InputFormat::AvroConfluent
    } else if payload.starts_with(&crate::avro::frame::SINGLE_OBJECT_MARKER) {
        InputFormat::AvroSingleObject
    } else {
        InputFormat::Json
    };
    let unclaimed = |failure: Failure| refused(failure, Some(format));
    let header_key = match key_from_headers(message) {
        Ok(key) => key,
        Err(failure) => return unclaimed(failure),
    };
    if let Err(failure) = cloudevents::check_binary(message) {
        return unclaimed(failure);
    }
    let claimed = |key: IdempotencyKey, request: Result<Request, Failure>| Decoded {
        key,
        request,
        fingerprint,
        // A tombstone never gets here: the record screen refuses it, claiming nothing.
        claims_key: true,
        format: Some(format),
    };
    if format == InputFormat::CloudeventsStructured {
        return match structured(message, payload, header_key) {
            Ok((key, request)) => claimed(key, request),
            Err(failure) => unclaimed(failure),
        };
    }
    // JSON or Avro, told apart by the value's first bytes.
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
    claimed(key, request)
}

/// A structured-mode CloudEvent: its key and request, or a failure of its key (which
/// claims nothing). The `idempotency-key` header still wins; else the envelope's
/// `source` and `id`, formed as the binary-mode headers are. A broken envelope is the
/// request's failure, keyed like any unreadable payload: by the headers, else derived.
fn structured(
    message: &InboundMessage,
    payload: &[u8],
    header_key: Option<IdempotencyKey>,
) -> Result<(IdempotencyKey, Result<Request, Failure>), Failure> {
    let envelope = match cloudevents::envelope(payload) {
        Ok(envelope) => envelope,
        Err(failure) => {
            let key = header_key.unwrap_or_else(|| derived_key(message));
            return Ok((key, Err(failure)));
        }
    };
    let key = match header_key {
        Some(key) if key.source == KeySource::Header => key,
        header_pair => {
            let key = cloudevents_key(
                ("the CloudEvent's \"source\"", envelope.source.as_bytes()),
                ("the CloudEvent's \"id\"", envelope.id.as_bytes()),
            )?;
            // Headers that name another event than the envelope: which one is meant?
            if let Some(pair) = header_pair.filter(|pair| pair.value != key.value) {
                return Err(Failure::new(
                    ErrorCode::InvalidIdempotencyKey,
                    format!(
                        "headers {CE_SOURCE_HEADER}/{CE_ID_HEADER} ({}) name another event than \
                         the CloudEvent's source/id ({})",
                        quote(pair.value.as_bytes()),
                        quote(key.value.as_bytes())
                    ),
                ));
            }
            key
        }
    };
    Ok((key, shape(envelope.data)))
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
    if let Some(value) = single_header(
        message,
        IDEMPOTENCY_KEY_HEADER,
        ErrorCode::InvalidIdempotencyKey,
    )? {
        return Ok(Some(IdempotencyKey {
            value: key_text(&format!("header {IDEMPOTENCY_KEY_HEADER:?}"), value)?,
            source: KeySource::Header,
        }));
    }
    let source = single_header(message, CE_SOURCE_HEADER, ErrorCode::InvalidIdempotencyKey)?;
    let id = single_header(message, CE_ID_HEADER, ErrorCode::InvalidIdempotencyKey)?;
    match (source, id) {
        (Some(source), Some(id)) => cloudevents_key(
            (&format!("header {CE_SOURCE_HEADER:?}"), source),
            (&format!("header {CE_ID_HEADER:?}"), id),
        )
        .map(Some),
        (None, None) => Ok(None),
        // Half a key is a key given but unusable, not an absent one.
        (Some(_), None) | (None, Some(_)) => {
            let (given, missing) = if id.is_some() {
                (CE_ID_HEADER, CE_SOURCE_HEADER)
            } else {
                (CE_SOURCE_HEADER, CE_ID_HEADER)
            };
            Err(Failure::new(
                ErrorCode::InvalidIdempotencyKey,
                format!(
                    "header {given:?} without {missing:?}: a CloudEvent is keyed by \
                     {CE_SOURCE_HEADER} and {CE_ID_HEADER} together"
                ),
            ))
        }
    }
}

/// A CloudEvents key, `<source>/<id>`: each part a key's text, the whole at most
/// [`MAX_KEY_BYTES`]. The same for binary-mode headers and a structured envelope, so
/// the same event is the same key in either mode.
fn cloudevents_key(
    (source_what, source): (&str, &[u8]),
    (id_what, id): (&str, &[u8]),
) -> Result<IdempotencyKey, Failure> {
    let value = format!(
        "{}/{}",
        key_text(source_what, source)?,
        key_text(id_what, id)?
    );
    if value.len() > MAX_KEY_BYTES {
        return Err(Failure::new(
            ErrorCode::InvalidIdempotencyKey,
            format!(
                "{source_what} and {id_what} as one key (source/id) are {} bytes long; \
                 the limit is {MAX_KEY_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(IdempotencyKey {
        value,
        source: KeySource::Cloudevents,
    })
}

/// The value of the one header called `name`, if there is one. Twice the same header is
/// ambiguous (readers disagree on which one counts), and one without a value says
/// nothing: both are failures with `code`, what the header is for deciding.
pub(super) fn single_header<'m>(
    message: &'m InboundMessage,
    name: &str,
    code: ErrorCode,
) -> Result<Option<&'m [u8]>, Failure> {
    let bad = |why: String| Failure::new(code, format!("header {name:?} {why}"));
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
        assert_eq!(code(&d), ErrorCode::InvalidIdempotencyKey);
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
    fn half_a_cloudevents_key_is_an_unusable_key() {
        let body = r#"{"idempotency_key":"p","intent":"Deploy AMF"}"#;
        refused(
            &decode(&message(body, &[("ce_source", "oss")])),
            ErrorCode::InvalidIdempotencyKey,
            &["\"ce_source\" without \"ce_id\""],
        );
        refused(
            &decode(&message(body, &[("ce_id", "1")])),
            ErrorCode::InvalidIdempotencyKey,
            &["\"ce_id\" without \"ce_source\""],
        );
        // The idempotency-key header wins before the pair is looked at.
        let d = decode(&message(body, &[("idempotency-key", "h"), ("ce_id", "1")]));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("h", KeySource::Header)
        );
        // Too long together, though each part is within the limit.
        let (source, id) = ("s".repeat(200), "i".repeat(100));
        refused(
            &decode(&message(body, &[("ce_source", &source), ("ce_id", &id)])),
            ErrorCode::InvalidIdempotencyKey,
            &["301 bytes", "limit is 256"],
        );
    }

    const SERVICE: &str = r#"{"intent":"Deploy AMF with 3 replicas in namespace core5g","priority":"high","idempotency_key":"from-data"}"#;

    /// A structured-mode CloudEvent around `data`, with these attribute overrides.
    fn structured_event(data: &str, attributes: serde_json::Value) -> String {
        let mut event = serde_json::json!({
            "specversion": "1.0",
            "id": "42",
            "source": "/oss/orders",
            "type": "com.example.order.created",
            "datacontenttype": "application/json",
        });
        event["data"] = serde_json::from_str(data).expect("test data is JSON");
        if let (Some(event), Some(overrides)) = (event.as_object_mut(), attributes.as_object()) {
            event.extend(overrides.clone());
        }
        event.to_string()
    }

    const STRUCTURED: (&str, &str) = (
        "content-type",
        "application/cloudevents+json; charset=UTF-8",
    );

    #[test]
    fn a_structured_cloudevent_is_its_data_keyed_by_source_and_id() {
        let body = structured_event(SERVICE, serde_json::json!({}));
        let d = decode(&message(&body, &[STRUCTURED]));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("/oss/orders/42", KeySource::Cloudevents)
        );
        assert!(d.claims_key);
        // The same request as a plain JSON payload.
        assert_eq!(d.request, decode(&message(SERVICE, &[])).request);
        // The fingerprint is the whole value's, envelope included.
        assert_eq!(d.fingerprint, fingerprint(Some(body.as_bytes())));
        // The same event in binary mode has the same key.
        let binary = decode(&message(
            SERVICE,
            &[
                ("ce_specversion", "1.0"),
                ("ce_id", "42"),
                ("ce_source", "/oss/orders"),
                ("ce_type", "com.example.order.created"),
                ("content-type", "application/json"),
            ],
        ));
        assert_eq!(binary.key, d.key);
        assert_eq!(binary.request, d.request);
        assert_eq!(d.format, Some(InputFormat::CloudeventsStructured));
        assert_eq!(binary.format, Some(InputFormat::CloudeventsBinary));
        assert_eq!(
            decode(&message(SERVICE, &[])).format,
            Some(InputFormat::Json)
        );
        // A network event in an envelope is a network event.
        let body = structured_event(
            r#"{"event_type":"alarm","event_id":"e"}"#,
            serde_json::json!({}),
        );
        assert!(matches!(
            decode(&message(&body, &[STRUCTURED])).request,
            Ok(Request::Event(_))
        ));
    }

    #[test]
    fn the_idempotency_key_header_still_wins_over_the_envelope() {
        let body = structured_event(SERVICE, serde_json::json!({}));
        let d = decode(&message(&body, &[STRUCTURED, ("idempotency-key", "h")]));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("h", KeySource::Header)
        );
        // Binary-mode key headers that agree with the envelope are the same key ...
        let d = decode(&message(
            &body,
            &[STRUCTURED, ("ce_source", "/oss/orders"), ("ce_id", "42")],
        ));
        assert_eq!(d.key.value, "/oss/orders/42");
        // ... and ones that name another event make it ambiguous.
        refused(
            &decode(&message(
                &body,
                &[STRUCTURED, ("ce_source", "/oss/orders"), ("ce_id", "43")],
            )),
            ErrorCode::InvalidIdempotencyKey,
            &["another event", "/oss/orders/43", "/oss/orders/42"],
        );
    }

    #[test]
    fn a_broken_envelope_is_rejected_with_a_precise_code_and_keyed_like_bad_json() {
        use serde_json::json;
        for (body, expected, needle) in [
            ("not json".to_string(), ErrorCode::InvalidJson, "not JSON"),
            (
                structured_event(SERVICE, json!({"specversion": "0.3"})),
                ErrorCode::InvalidSchema,
                "specversion",
            ),
            (
                structured_event(SERVICE, json!({"type": ""})),
                ErrorCode::InvalidSchema,
                "\"type\"",
            ),
            (
                structured_event(SERVICE, json!({"id": null})),
                ErrorCode::InvalidSchema,
                "\"id\"",
            ),
            (
                structured_event("[1]", json!({})),
                ErrorCode::InvalidSchema,
                "\"data\"",
            ),
            (
                structured_event(SERVICE, json!({"datacontenttype": "text/xml"})),
                ErrorCode::InvalidSchema,
                "datacontenttype",
            ),
        ] {
            let d = decode(&message(&body, &[STRUCTURED]));
            let failure = d.request.as_ref().expect_err(needle);
            assert_eq!(failure.code, expected, "{}", failure.message);
            assert!(failure.message.contains(needle), "{}", failure.message);
            assert_eq!(d.key.source, KeySource::Derived);
            // Keyed by its bytes like any unreadable payload: a retry is a duplicate.
            assert_eq!(d.key, derived_key(&message(&body, &[])));
            assert!(d.claims_key);
            // A key header still keys it.
            let d = decode(&message(&body, &[STRUCTURED, ("idempotency-key", "h")]));
            assert_eq!(d.key.value, "h");
        }
    }

    #[test]
    fn the_request_in_an_envelope_is_read_by_the_plain_payload_rules() {
        for data in [
            r#"{"hello":"world"}"#,
            r#"{"intent":"  "}"#,
            r#"{"intent":3}"#,
            r#"{"intent":"x","event_type":"alarm"}"#,
            r#"{"intent":"x","parameters":{"a":{"nested":1}}}"#,
        ] {
            let plain = decode(&message(data, &[]));
            let d = decode(&message(
                &structured_event(data, serde_json::json!({})),
                &[STRUCTURED],
            ));
            assert_eq!(code(&d), code(&plain), "{data}");
            assert_eq!(d.key.source, KeySource::Cloudevents);
        }
    }

    #[test]
    fn an_envelope_source_or_id_that_breaks_the_key_rules_is_an_unusable_key() {
        use serde_json::json;
        for (attributes, needle) in [
            (json!({"id": "4\u{1b}[2J"}), "the CloudEvent's \"id\""),
            (
                json!({"source": "oss\u{202e}"}),
                "the CloudEvent's \"source\"",
            ),
            (json!({"id": "   "}), "is empty"),
            (
                json!({"source": "s".repeat(255)}),
                "258 bytes long; the limit is 256",
            ),
        ] {
            let body = structured_event(SERVICE, attributes);
            refused(
                &decode(&message(&body, &[STRUCTURED])),
                ErrorCode::InvalidIdempotencyKey,
                &[needle],
            );
        }
    }

    #[test]
    fn a_binary_cloudevent_must_be_version_1_0_and_complete() {
        let complete = [
            ("ce_specversion", "1.0"),
            ("ce_id", "7"),
            ("ce_source", "oss"),
            ("ce_type", "order"),
        ];
        let d = decode(&message(GOOD, &complete));
        assert_eq!(
            (d.key.value.as_str(), d.key.source),
            ("oss/7", KeySource::Cloudevents)
        );
        assert!(d.request.is_ok());
        let mut old = complete;
        old[0].1 = "0.3";
        let d = decode(&message(GOOD, &old));
        assert_eq!(code(&d), ErrorCode::InvalidSchema);
        assert!(!d.claims_key);
        assert!(d
            .request
            .as_ref()
            .expect_err("0.3")
            .message
            .contains(r#""0.3""#));
        // Declared a CloudEvent, it needs its type, even keyed by the header.
        let d = decode(&message(
            GOOD,
            &[
                ("ce_specversion", "1.0"),
                ("ce_id", "7"),
                ("ce_source", "oss"),
                ("idempotency-key", "h"),
            ],
        ));
        assert_eq!(code(&d), ErrorCode::InvalidSchema);
        assert!(d
            .request
            .as_ref()
            .expect_err("no type")
            .message
            .contains("\"ce_type\" is missing"));
        let d = decode(&message(
            GOOD,
            &[
                ("ce_specversion", "1.0"),
                ("ce_id", "7"),
                ("ce_source", "oss"),
                ("ce_type", ""),
            ],
        ));
        assert!(d
            .request
            .as_ref()
            .expect_err("empty type")
            .message
            .contains("\"ce_type\" is empty"));
        // Without ce_specversion the pair alone keys the message, as it always has.
        let d = decode(&message(GOOD, &[("ce_id", "7"), ("ce_source", "oss")]));
        assert_eq!(d.key.value, "oss/7");
    }

    #[test]
    fn the_content_type_says_how_to_read_the_value() {
        // JSON and Avro types are read by their bytes (Avro: by its framing).
        for content_type in ["application/json", "application/vnd.x+json", "avro/binary"] {
            let d = decode(&message(GOOD, &[("content-type", content_type)]));
            assert!(d.request.is_ok(), "{content_type}");
        }
        // Any other type is refused before the value is read, claiming no key.
        refused(
            &decode(&message(
                GOOD,
                &[("content-type", "text/plain"), ("idempotency-key", "k")],
            )),
            ErrorCode::InvalidRecord,
            &["content-type", "text/plain"],
        );
        let d = decode(&message(GOOD, &[("content-type", "text/plain")]));
        assert_eq!(d.format, None, "refused before its format is known");
        // Refused for its headers after the format is known, it is counted in it.
        let d = decode(&message(GOOD, &[("ce_specversion", "0.3")]));
        assert_eq!(d.format, Some(InputFormat::CloudeventsBinary));
        // A plain JSON request under the structured type is a broken envelope.
        let d = decode(&message(GOOD, &[STRUCTURED]));
        assert_eq!(code(&d), ErrorCode::InvalidSchema);
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
                Just(b"ce_specversion".to_vec()),
                Just(b"content-type".to_vec()),
                Just(b"idempotency-key\0x".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ]
        }

        fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
            proptest::option::of(prop_oneof![
                "[a-z0-9-]{1,20}".prop_map(String::into_bytes),
                Just(b"1.0".to_vec()),
                Just(b"application/cloudevents+json".to_vec()),
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
                    // Structured CloudEvents with hostile attributes.
                    (any::<String>(), any::<String>(), any::<bool>()).prop_map(
                        |(source, id, data)| {
                            let mut event = serde_json::json!({"specversion": "1.0", "id": id,
                            "source": source, "type": "t"});
                            if data {
                                event["data"] = serde_json::json!({"intent": "Deploy AMF"});
                            }
                            event.to_string().into_bytes()
                        }
                    ),
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
